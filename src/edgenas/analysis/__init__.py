"""Analysis of sweeps: pure functions over measurements (no I/O, no text). `analyse` builds a `Study`,
which `edgenas.report` renders."""

from edgenas.analysis.accuracy import (
    AccuracyStudy,
    Budget,
    Comparison,
    FactorComparison,
    FactorEntry,
    Noise,
    TrainedDesign,
    accuracy_study,
    pareto_front,
)
from edgenas.analysis.anomalies import (
    ANOMALY_KINDS,
    DESIGN_KINDS,
    Anomalies,
    Anomaly,
    CompileFailed,
    CpuFallback,
    CpuLayer,
    FpsCliff,
    LayerShift,
    LiveTensor,
    OffchipBound,
    OffchipLayer,
    OverheadPoint,
    OverMemory,
    SramOverhead,
    WeightLayer,
)
from edgenas.analysis.breakdown import CheaperVariant, CycleBreakdown, DominantOp, Share
from edgenas.analysis.designs import Design
from edgenas.analysis.keyresults import KeyResults, KeyRow, Matrix
from edgenas.analysis.memory import MinSram, MinSramEntry, ProfileSram
from edgenas.analysis.recommend import (
    POOLS,
    SCENARIOS,
    ChoiceRanking,
    ChoiceSpace,
    ExcludedValue,
    Exclusion,
    RankEntry,
    Recommendation,
    ReducedSpace,
    Scenario,
)
from edgenas.analysis.settings import SETTING_KEYS, StudySettings, settings_from_mapping
from edgenas.analysis.study import ProfileInfo, Study, SweepSummary, analyse, resolve_settings

__all__ = [
    "ANOMALY_KINDS", "DESIGN_KINDS", "POOLS", "SCENARIOS", "SETTING_KEYS", "AccuracyStudy", "Anomalies", "Anomaly",
    "Budget", "CheaperVariant", "ChoiceRanking", "ChoiceSpace", "Comparison", "CompileFailed", "CpuFallback",
    "CpuLayer", "CycleBreakdown", "Design", "DominantOp", "ExcludedValue", "Exclusion", "FactorComparison",
    "FactorEntry", "FpsCliff", "KeyResults", "KeyRow", "LayerShift", "LiveTensor", "Matrix", "MinSram",
    "MinSramEntry", "Noise", "OffchipBound", "OffchipLayer", "OverMemory", "OverheadPoint", "ProfileInfo",
    "ProfileSram", "RankEntry", "Recommendation", "ReducedSpace", "Scenario", "Share", "SramOverhead", "Study",
    "StudySettings", "SweepSummary", "TrainedDesign", "WeightLayer", "accuracy_study", "analyse", "pareto_front",
    "resolve_settings", "settings_from_mapping",
]

"""A Study (computed by `analysis/`) written out as a Document in English or Chinese. Nothing here computes
a metric: it picks, orders and formats what the Study holds."""

from __future__ import annotations

from typing import Any

from edgenas.analysis.designs import Design
from edgenas.analysis.study import Study
from edgenas.report import plots
from edgenas.report.document import BulletList, CodeBlock, Document, Figure, Note, Paragraph, Section, Table
from edgenas.report.text import fmt, pct, sfmt, t

MAX_OFFCHIP_TABLES = 3  # per-layer excerpts shown in full; the rest are listed by name
MAX_TENSOR_ROWS = 5
EXPECTED_DOMINANT = frozenset({"Conv2D", "DepthwiseConv2D", "FullyConnected"})


def label(d: Design) -> str:
    """A design as the report names it: its choice values joined (`shufflenet + conv3x3`)."""
    return " + ".join(v for _, v in d.choices)


def study_document(study: Study, lang: str = "en") -> Document:
    w = _Writer(study, lang)
    sections = [w.config(), w.key_results()]
    if study.accuracy is not None:
        sections.append(w.accuracy())
    sections += [w.sweep(), w.anomalies(), w.cycles()]
    if study.min_sram is not None:
        sections.append(w.min_sram())
    sections.append(w.recommendations())
    return Document(t(lang, "title", space=study.summary.space or "sweep"), lang, tuple(sections))


class _Writer:
    def __init__(self, study: Study, lang: str) -> None:
        self.s = study
        self.lang = lang
        self.key = study.settings.key_resolution
        self.device = study.settings.device_hardware
        self.acc = study.accuracy
        self.trained = {d.design: d for d in self.acc.designs} if self.acc is not None else {}

    # ---- accuracy helpers (the metric's columns in other tables) -------------------------------------------
    @property
    def metric(self) -> str:
        return self.acc.budget.metric.upper() if self.acc is not None else ""

    def _train_res(self) -> str:
        assert self.acc is not None
        return "/".join(self.acc.budget.train_resolutions) or "-"

    def _deploy_res(self) -> str:
        assert self.acc is not None
        return self.acc.budget.deploy_resolution or "-"

    def _budget(self) -> str:
        assert self.acc is not None
        b = self.acc.budget

        def j(xs: Any) -> str:
            return "/".join(str(x) for x in xs) or "-"

        return self.t("acc.budget", epochs=j(b.epochs), samples=j(b.train_samples), res=self._train_res(),
                      batch=j(b.batch_sizes), seeds=j(b.seeds))

    def _metric_cols(self) -> tuple[str, ...]:
        if self.acc is None:
            return ()
        return (self.t("col.metric_at", metric=self.metric, res=self._train_res()),
                self.t("col.metric_at", metric=self.metric, res=self._deploy_res()))

    def _metric_cells(self, d: Design) -> tuple[str, ...]:
        if self.acc is None:
            return ()
        tr = self.trained.get(d)
        return (fmt(tr.train, 3), fmt(tr.deploy, 3)) if tr is not None else ("-", "-")

    def t(self, msg: str, /, **kw: Any) -> str:
        return t(self.lang, msg, **kw)

    # ---- search configuration ----------------------------------------------------------------------
    def config(self) -> Section:
        sm = self.s.summary
        blocks: list[Any] = [Paragraph(self.t("config.intro", space=sm.space or "-", network=sm.network or "-",
                                              designs=sm.designs, resolutions=len(sm.resolutions),
                                              profiles=len(sm.hardware), rows=sm.rows, failed=sm.failed_rows))]
        blocks.append(Table((self.t("col.choice"), self.t("col.values")),
                            tuple((c, ", ".join(vs)) for c, vs in sm.choices), self.t("config.choices")))
        if sm.fixed:
            blocks.append(Table((self.t("col.parameter"), self.t("col.value")), sm.fixed, self.t("config.fixed")))
        for param, choice in sm.tied:
            blocks.append(Paragraph(self.t("config.tied", param=param, choice=choice)))
        blocks.append(Paragraph(self.t("config.resolutions", list=", ".join(sm.resolutions))))
        blocks.append(Table(
            (self.t("col.profile"), self.t("col.sram_kib"), self.t("col.flash_kib"), self.t("col.arena_kib")),
            tuple((p.name, fmt(p.sram_kib, 0), fmt(p.flash_kib, 0), fmt(p.arena_kib, 0)) for p in sm.hardware),
            self.t("col.profile")))
        blocks.append(Paragraph(self.t("config.device", device=self.device, key=self.key,
                                       baseline=label(self.s.baseline))))
        if sm.compilers:
            blocks.append(Paragraph(self.t("config.compiler", compilers=", ".join(sm.compilers))))
        if sm.compiler_estimates:
            blocks.append(Note(self.t("config.estimate")))
        return Section(self.t("sec.config"), tuple(blocks), anchor="configuration")

    # ---- key results -----------------------------------------------------------------------------------
    def key_results(self) -> Section:
        kr = self.s.key_results
        rows, tags, names, fps_values = [], [], [], []
        for r in kr.rows:
            marks = [self.t(f"mark.{m}") for m in ("fastest", "slowest", "baseline")
                     if (r.fastest if m == "fastest" else r.slowest if m == "slowest" else r.is_baseline)]
            if not r.fits:
                marks.append(self.t("mark.over"))
            tag = " ".join(m for m, on in (("fastest", r.fastest), ("slowest", r.slowest), ("baseline", r.is_baseline))
                           if on) or None
            rows.append((label(r.design), fmt(r.fps, 2), fmt(r.sram_kib, 1), *self._metric_cells(r.design),
                         pct(r.fps_change), pct(r.sram_change), self.t("yes") if r.fits else self.t("no"),
                         ", ".join(marks)))
            tags.append(tag)
            if r.fps is not None:
                names.append(label(r.design))
                fps_values.append(r.fps)
        blocks: list[Any] = []
        if kr.fastest is not None and kr.slowest is not None:
            fast = next(r for r in kr.rows if r.design == kr.fastest)
            slow = next(r for r in kr.rows if r.design == kr.slowest)
            blocks.append(Paragraph(self.t("key.intro", n=sum(1 for r in kr.rows if r.fps is not None),
                                           fitting=kr.n_fitting, fastest=label(fast.design),
                                           fastest_fps=fmt(fast.fps, 2),
                                           fastest_change=pct(fast.fps_change), slowest=label(slow.design),
                                           slowest_fps=fmt(slow.fps, 2), slowest_change=pct(slow.fps_change))))
        if kr.fastest_fitting is not None and kr.fastest_fitting != kr.fastest:
            ff = next(r for r in kr.rows if r.design == kr.fastest_fitting)
            blocks.append(Paragraph(self.t("key.fastest_fitting", design=label(ff.design), fps=fmt(ff.fps, 2))))
        cols = (self.t("col.design"), self.t("col.fps"), self.t("col.sram_kib"), *self._metric_cols(),
                self.t("col.fps_change"), self.t("col.sram_change"), self.t("col.fits"), self.t("col.mark"))
        blocks.append(Table(cols, tuple(rows), self.t("key.table", key=self.key, device=self.device),
                            highlight=tuple(tags)))
        if self.acc is not None:
            blocks.append(Note(self.t("acc.key_note", metric=self.metric, budget=self._budget())))
        if names:
            png = plots.bar_plot(names, fps_values, self.t("key.plot", key=self.key, device=self.device),
                                 self.t("axis.fps"), value_format="{:,.1f}", highlight={label(self.s.baseline)},
                                 reference=kr.baseline_fps, reference_label=self.t("mark.baseline"))
            blocks.append(Figure(png, self.t("key.plot", key=self.key, device=self.device), "FPS bar chart",
                                 "key_fps.png"))
        return Section(self.t("sec.key", key=self.key, device=self.device), tuple(blocks), anchor="key-results")

    # ---- accuracy ----------------------------------------------------------------------------------------
    def accuracy(self) -> Section:
        a = self.acc
        assert a is not None
        b, n, m = a.budget, a.noise, self.metric
        tr, dr = self._train_res(), self._deploy_res()
        budget = self._budget()
        blocks: list[Any] = [Paragraph(self.t(
            "acc.intro", runs=b.runs, designs=len(a.designs), budget=budget, minutes=fmt(b.seconds / 60, 1),
            metric=m, val="/".join(str(x) for x in b.val_samples) or "-", train_res=tr, deploy_res=dr,
            device=a.hardware, fps_res=a.fps_resolution)), Note(self.t("acc.caveat", metric=m))]
        if n.train is not None or n.deploy is not None:
            blocks.append(Paragraph(self.t("acc.noise", metric=m, n=n.designs, k=n.seeds_per_design,
                                           train=fmt(n.train, 3), deploy=fmt(n.deploy, 3), train_res=tr,
                                           deploy_res=dr)))
        else:
            blocks.append(Paragraph(self.t("acc.noise_unknown")))
        if b.zero_train is not None or b.zero_deploy is not None:
            key = "acc.zero" if n.train is not None or n.deploy is not None else "acc.zero_unknown_noise"
            blocks.append(Paragraph(self.t(key, zero_train=fmt(b.zero_train, 3), zero_deploy=fmt(b.zero_deploy, 3),
                                           train_res=tr, deploy_res=dr, n_train=a.beat_zero_train,
                                           n_deploy=a.beat_zero_deploy, designs=len(a.designs))))
            for res, beat, zero in ((tr, a.beat_zero_train, b.zero_train), (dr, a.beat_zero_deploy, b.zero_deploy)):
                if zero is not None and beat == 0:
                    blocks.append(Note(self.t("acc.not_learned", res=res)))
        if a.unmatched:
            blocks.append(Paragraph(self.t("acc.unmatched", n=a.unmatched)))
        others = [o[0] for o in a.designs[0].others] if a.designs else []
        cols = (self.t("col.design"), self.t("col.seeds"), *self._metric_cols(),
                self.t("col.spread", res=tr), self.t("col.spread", res=dr),
                *(self.t("col.metric_at", metric=o, res=r) for o in others for r in (tr, dr)),
                self.t("col.fps"), self.t("col.sram_kib"), self.t("col.fits"), self.t("col.front"))
        rows = []
        for d in a.designs:
            front = ", ".join(r for r, on in ((tr, d.front_train), (dr, d.front_deploy)) if on) or "-"
            rows.append((label(d.design), ",".join(map(str, d.seeds)) or "-", fmt(d.train, 3), fmt(d.deploy, 3),
                         fmt(d.spread_train, 3), fmt(d.spread_deploy, 3),
                         *(fmt(v, 2) for _, vt, vd in d.others for v in (vt, vd)),
                         fmt(d.fps, 2), fmt(d.sram_kib, 1), self.t("yes") if d.fits else self.t("no"), front))
        blocks.append(Table(cols, tuple(rows), self.t("acc.table", metric=m, budget=budget),
                            highlight=tuple("baseline" if d.design == self.s.baseline else None for d in a.designs)))
        for res, front, which in ((tr, a.front_train, "train"), (dr, a.front_deploy, "deploy")):
            if not front:
                blocks.append(Paragraph(self.t("acc.front_none", res=a.fps_resolution)))
                continue
            blocks.append(Paragraph(self.t("acc.front", metric=m, res=res, list=", ".join(
                f"**{label(d)}** ({fmt(getattr(self.trained[d], which), 3)}, {fmt(self.trained[d].fps, 2)} FPS)"
                for d in front))))
            pts = [(label(d.design), d.fps, getattr(d, which)) for d in a.designs
                   if d.fits and d.fps is not None and getattr(d, which) is not None]
            title = self.t("acc.plot", metric=m, res=res, fps_res=a.fps_resolution)
            png = plots.scatter_plot(pts, title, self.t("axis.fps"), f"{m} ({res})",
                                     front=[label(d) for d in front])
            blocks.append(Figure(png, title, title, f"accuracy_{which}.png"))
        for fc in a.factors:
            blocks.append(self._factor(fc, budget))
        return Section(self.t("sec.accuracy"), tuple(blocks), anchor="accuracy")

    def _factor(self, fc: Any, budget: str) -> Section:
        m, tr, dr = self.metric, self._train_res(), self._deploy_res()
        cols = (fc.choice, self.t("col.fps"), self.t("col.vs_ref"), self.t("col.metric_at", metric=m, res=tr),
                self.t("col.delta_at", metric=m, res=tr), self.t("col.metric_at", metric=m, res=dr),
                self.t("col.delta_at", metric=m, res=dr), self.t("col.front"))
        rows = []
        for e in fc.entries:
            front = ", ".join(r for r, on in ((tr, e.on_front_train), (dr, e.on_front_deploy)) if on) or "-"
            rows.append((e.value + (f" ({self.t('mark.reference')})" if e.is_reference else ""),
                         fmt(e.trained.fps, 2), pct(e.fps_change), fmt(e.trained.train, 3),
                         "-" if e.is_reference else sfmt(e.train.delta, 3), fmt(e.trained.deploy, 3),
                         "-" if e.is_reference else sfmt(e.deploy.delta, 3), front))
        blocks: list[Any] = [Table(cols, tuple(rows), self.t("acc.factor_table", choice=fc.choice, ref=fc.reference,
                                                               budget=budget),
                                   highlight=tuple("baseline" if e.is_reference else None for e in fc.entries))]
        items = []
        for e in fc.entries:
            if e.is_reference:
                continue
            clauses = [self.t(f"acc.outcome.{c.outcome}", metric=m, delta=sfmt(c.delta, 3), noise=fmt(c.noise, 3))
                       for c in (e.train, e.deploy)]
            text = self.t("acc.factor_item", value=e.value, ref=fc.reference, fps_change=pct(e.fps_change),
                          train_res=tr, train=clauses[0], deploy_res=dr, deploy=clauses[1])
            if not e.trained.fits and self.acc is not None:
                text += " " + self.t("acc.not_fit", device=self.acc.hardware, res=self.acc.fps_resolution)
            items.append(text)
        if fc.recommended:
            source = self.t(f"acc.source.{self.acc.recommended_source}") if self.acc is not None else ""
            for res, attr in ((tr, "on_front_train"), (dr, "on_front_deploy")):
                on = [e.value for e in fc.entries if e.recommended and getattr(e, attr)]
                off = [e.value for e in fc.entries if e.recommended and not getattr(e, attr)]
                dropped = [e.value for e in fc.entries if not e.recommended and getattr(e, attr)]
                items.append(self.t("acc.recommended", res=res, source=source, kept=", ".join(fc.recommended),
                                    metric=m, on=", ".join(on) or self.t("none"), off=", ".join(off) or self.t("none"),
                                    dropped=", ".join(dropped) or self.t("none")))
        if items:
            blocks.append(BulletList(tuple(items)))
        return Section(self.t("acc.factor", choice=fc.choice, ref=fc.reference), tuple(blocks),
                       anchor=f"accuracy-{_slug(fc.choice)}")

    # ---- every resolution --------------------------------------------------------------------------------
    def _matrix_table(self, m: Any, caption: str, digits: int) -> Table:
        rows = []
        for d, vals, fits in zip(m.designs, m.values, m.fits):
            rows.append((label(d), *(fmt(v, digits) + ("" if ok or v is None else "*") for v, ok in zip(vals, fits))))
        base = tuple("baseline" if d == self.s.baseline else None for d in m.designs)
        return Table((self.t("col.design"), *m.resolutions), tuple(rows), caption,
                     align=("left", *("right",) * len(m.resolutions)), highlight=base)

    def sweep(self) -> Section:
        fps, sram = self.s.fps, self.s.sram
        shown = self._plot_designs()
        blocks: list[Any] = [Paragraph(self.t("sweep.note", device=self.device))]
        blocks.append(self._matrix_table(fps, self.t("sweep.fps_table"), 2))
        blocks.append(self._matrix_table(sram, self.t("sweep.sram_table"), 1))
        if len(shown) < len(fps.designs):
            blocks.append(Paragraph(self.t("sweep.plot_subset", n=len(shown))))
        for m, key, ylabel, fname in ((fps, "sweep.fps_plot", "axis.fps", "fps_by_resolution.png"),
                                      (sram, "sweep.sram_plot", "axis.sram", "sram_by_resolution.png")):
            series = {label(d): list(v) for d, v in zip(m.designs, m.values) if d in shown}
            marks = [(label(c.design), list(m.resolutions).index(c.resolution), "cliff")
                     for c in self.s.anomalies.fps_cliffs if c.design in shown] if m is fps else None
            png = plots.line_plot(list(m.resolutions), series, self.t(key, device=self.device),
                                  self.t("axis.resolution"), self.t(ylabel), log_y=True, marker_points=marks)
            blocks.append(Figure(png, self.t(key, device=self.device), self.t(key, device=self.device), fname))
        return Section(self.t("sec.sweep"), tuple(blocks), anchor="resolutions")

    def _plot_designs(self) -> list[Design]:
        """Plots stay readable: with more than 12 designs, only the reduced space (and the baseline)."""
        designs = list(self.s.fps.designs)
        if len(designs) <= 12:
            return designs
        kept = {c.choice: set(c.kept) for c in self.s.recommendation.reduced_space.choices}
        chosen = [d for d in designs if all(v in kept.get(c, {v}) for c, v in d.choices) or d == self.s.baseline]
        return chosen[:12] if chosen else designs[:12]

    # ---- anomalies ------------------------------------------------------------------------------------------
    def anomalies(self) -> Section:
        a = self.s.anomalies
        st = self.s.settings
        if not a.all:
            return Section(self.t("sec.anomalies"), (Paragraph(self.t("anom.none", device=self.device)),),
                           anchor="anomalies")
        blocks: list[Any] = [Paragraph(self.t(
            "anom.count", device=self.device, cliffs=len(a.fps_cliffs), offchip=len(a.offchip_bound),
            over=len(a.over_memory), overhead=len(a.sram_overhead), limit=pct(st.sram_overhead_limit, False, 0),
            cpu=len(a.cpu_fallback), failed=len(a.compile_failed)))]
        blocks += [self._cliffs(), self._offchip(), self._over(), self._overhead(), self._cpu()]
        if a.compile_failed:
            blocks.append(Section(self.t("sec.failed"), (BulletList(tuple(
                f"**{label(f.design)}** @ {f.resolution}: `{f.error[:200]}`" for f in a.compile_failed)),),
                anchor="failed"))
        return Section(self.t("sec.anomalies"), tuple(blocks), anchor="anomalies")

    def _cliffs(self) -> Section:
        cliffs = self.s.anomalies.fps_cliffs
        if not cliffs:
            body: tuple[Any, ...] = (Paragraph(self.t("cliff.none", tol=pct(self.s.settings.cliff_tolerance, False))),)
        else:
            items = []
            for c in cliffs:
                cause = self.t(f"cliff.cause.{c.cause}", share=pct(c.offchip_share, False),
                               larger_share=pct(c.larger_offchip_share, False), res=c.resolution,
                               larger=c.larger_resolution, sram=fmt(c.sram_kib), arena=fmt(c.arena_kib))
                text = self.t("cliff.item", design=label(c.design), fps=fmt(c.fps, 2), res=c.resolution,
                              larger_fps=fmt(c.larger_fps, 2), larger=c.larger_resolution, excess=pct(c.excess),
                              ratio=fmt(c.pixel_ratio, 2), expected=fmt(c.expected_fps, 2), cause=cause)
                if c.top_layer is not None:
                    text += " " + self.t("cliff.top", name=c.top_layer.name, cycles=fmt(c.top_layer.cycles, 0),
                                         expected=fmt(c.top_layer.expected_cycles, 0))
                items.append(text)
            body = (BulletList(tuple(items)),)
        return Section(self.t("sec.cliff"), body, anchor="cliffs")

    def _offchip(self) -> Section:
        st = self.s.settings
        bound = self.s.anomalies.offchip_bound
        rule = Paragraph(self.t("offchip.rule", thr=pct(st.offchip_share, False, 0),
                                min=pct(st.min_offchip_layer_share, False, 0)))
        if not bound:
            return Section(self.t("sec.offchip"), (Paragraph(self.t("offchip.none", thr=pct(st.offchip_share, False,
                                                                                               0))),), anchor="offchip")
        ordered = sorted(bound, key=lambda b: -b.bound_share)
        blocks: list[Any] = [rule]
        cols = (self.t("col.layer"), self.t("col.op"), self.t("col.cycles"), self.t("col.net_share"),
                self.t("col.offflash"), self.t("col.dram"), self.t("col.offchip_share"))
        for b in ordered[:MAX_OFFCHIP_TABLES]:
            blocks.append(Paragraph(self.t("offchip.item", design=label(b.design), res=b.resolution, n=len(b.layers),
                                           share=pct(b.bound_share, False))))
            blocks.append(Table(cols, tuple((lr.name, lr.original_op, fmt(lr.cycles, 0), pct(lr.network_share, False),
                                             fmt(lr.offflash_ac, 0), fmt(lr.dram_ac, 0),
                                             pct(lr.offchip_share, False)) for lr in b.layers),
                                self.t("offchip.table", design=label(b.design), res=b.resolution)))
        rest = ordered[MAX_OFFCHIP_TABLES:]
        if rest:
            blocks.append(Paragraph(self.t("offchip.more", n=len(rest), list=", ".join(
                f"{label(b.design)} @ {b.resolution} ({pct(b.bound_share, False)})" for b in rest))))
        return Section(self.t("sec.offchip"), tuple(blocks), anchor="offchip")

    def _over(self) -> Section:
        over = self.s.anomalies.over_memory
        dev = self.s.summary.device
        if not over:
            return Section(self.t("sec.over"), (Paragraph(self.t("over.none", device=self.device,
                                                                 sram=fmt(dev.sram_kib, 0))),), anchor="over-memory")
        total = sum(1 for r in self.s.fps.values for v in r if v is not None)
        blocks: list[Any] = [Paragraph(self.t("over.summary", n=len(over), total=total, device=self.device,
                                              sram=fmt(dev.sram_kib, 0), flash=fmt(dev.flash_kib, 0)))]
        first: dict[Design, Any] = {}
        for o in over:  # anomalies come in increasing resolution per design
            first.setdefault(o.design, o)
        cols = (self.t("col.design"), self.t("col.resolution"), "memory", self.t("col.used_kib"),
                self.t("col.device_kib"), self.t("col.excess"))
        blocks.append(Table(cols, tuple((label(o.design), o.resolution, o.memory, fmt(o.used_kib), fmt(o.device_kib, 0),
                                         fmt(o.used_ratio, 2) + "x" if o.used_ratio is not None else "-")
                                        for o in first.values()), self.t("over.table")))
        worst = max((o for o in over if o.tensors), key=lambda o: o.used_ratio or 0.0, default=None)
        if worst is not None:
            blocks.append(Paragraph(self.t("over.tensors", res=worst.resolution, design=label(worst.design),
                                           used=fmt(worst.used_kib), device=fmt(worst.device_kib, 0),
                                           op=worst.ir_peak_op, peak=fmt(worst.ir_peak_kib))))
            blocks.append(Table((self.t("col.tensor"), self.t("col.shape"), self.t("col.bytes")),
                                tuple((x.name, f"{x.channels} x {x.height} x {x.width}", fmt(x.bytes / 1024))
                                      for x in worst.tensors[:MAX_TENSOR_ROWS]), self.t("col.tensor")))
            alone = sum(1 for x in worst.tensors if x.alone_exceeds)
            if alone:
                blocks.append(Paragraph(self.t("over.alone", n=alone)))
        return Section(self.t("sec.over"), tuple(blocks), anchor="over-memory")

    def _overhead(self) -> Section:
        flagged = self.s.anomalies.sram_overhead
        limit = pct(self.s.settings.sram_overhead_limit, False, 0)
        if not flagged:
            return Section(self.t("sec.overhead"), (Paragraph(self.t("overhead.none", limit=limit)),),
                           anchor="sram-overhead")
        blocks: list[Any] = []
        for o in flagged:
            blocks.append(Paragraph(self.t("overhead.item", choice=o.choice, value=o.value, base=o.baseline_value,
                                           max=pct(o.max_ratio), mean=pct(o.mean_ratio))))
            blocks.append(Table((self.t("col.resolution"), self.t("col.baseline_sram"), self.t("col.sram_kib"),
                                 self.t("col.overhead")),
                                tuple((p.resolution, fmt(p.baseline_sram_kib), fmt(p.sram_kib), pct(p.ratio))
                                      for p in o.points),
                                self.t("overhead.table", choice=o.choice, value=o.value, base=o.baseline_value)))
        return Section(self.t("sec.overhead"), tuple(blocks), anchor="sram-overhead")

    def _cpu(self) -> Section:
        cpu = self.s.anomalies.cpu_fallback
        if not cpu:
            return Section(self.t("sec.cpu"), (Paragraph(self.t("cpu.none")),), anchor="cpu-fallback")
        cols = (self.t("col.design"), self.t("col.resolution"), self.t("col.cpu_layers"), self.t("col.fps"),
                self.t("col.fps_e2e"))
        table = Table(cols, tuple((label(c.design), c.resolution, ", ".join(f"{x.name} ({x.original_op})"
                                                                            for x in c.layers) or str(c.cpu_ops),
                                   fmt(c.fps, 2), fmt(c.fps_end_to_end, 2)) for c in cpu), self.t("sec.cpu"))
        return Section(self.t("sec.cpu"), (Paragraph(self.t("cpu.note")), table), anchor="cpu-fallback")

    # ---- cycles ----------------------------------------------------------------------------------------------
    def cycles(self) -> Section:
        bds = [b for b in self.s.breakdowns if b.parts]
        blocks: list[Any] = []
        if not bds:
            return Section(self.t("sec.cycles"), (Paragraph("-"),), anchor="cycles")
        base = next((b for b in bds if b.design == self.s.baseline), bds[0])
        blocks.append(Paragraph(self.t("cycles.baseline", design=label(base.design), key=self.key, parts=", ".join(
            f"{p.name} {pct(p.share, False)}" for p in base.parts))))
        part_names = list(dict.fromkeys(p.name for b in bds for p in b.parts))
        parts = {n: [next((p.share * 100 for p in b.parts if p.name == n), 0.0) for b in bds] for n in part_names}
        png = plots.stacked_bar_plot([label(b.design) for b in bds], parts,
                                     self.t("cycles.parts_plot", key=self.key, device=self.device),
                                     self.t("axis.share"), percent=True)
        blocks.append(Figure(png, self.t("cycles.parts_plot", key=self.key, device=self.device),
                             "cycle shares", "cycles_by_part.png"))
        blocks.append(Table((self.t("col.op"), self.t("col.cycles"), self.t("col.share")),
                            tuple((s.name, fmt(s.cycles, 0), pct(s.share, False)) for s in base.op_types),
                            self.t("cycles.ops_table", key=self.key)))
        notes = []
        seen: set[tuple[str, str]] = set()
        for b in bds:
            for dom in b.dominant:
                # Convolutions carrying a conv network's cycles is expected; worth a sentence is another op
                # type taking over, or one IR op the compiler lowered into several NPU ops.
                lowered = dom.ir_ops is not None and dom.npu_ops > dom.ir_ops
                if dom.op_type in EXPECTED_DOMINANT and not lowered and b.design != self.s.baseline:
                    continue
                text = self.t("cycles.dominant", design=label(b.design), op=dom.op_type, share=pct(dom.share, False),
                              npu=dom.npu_ops, ir=dom.ir_ops if dom.ir_ops is not None else "?")
                for ch in dom.cheaper:
                    if (ch.parameter, ch.alternative) in seen and ch.code == "space_lowering":
                        continue
                    seen.add((ch.parameter, ch.alternative))
                    text += " " + self.t(f"cycles.cheaper.{ch.code}", param=ch.parameter, current=ch.current,
                                         alt=ch.alternative, saving=pct(ch.saving, False))
                notes.append(text)
        if notes:
            blocks.append(BulletList(tuple(notes[:12])))
        else:
            blocks.append(Paragraph(self.t("cycles.no_dominant", thr=pct(self.s.settings.dominant_op_share, False, 0))))
        return Section(self.t("sec.cycles"), tuple(blocks), anchor="cycles")

    # ---- smallest SRAM ---------------------------------------------------------------------------------------
    def min_sram(self) -> Section:
        ms = self.s.min_sram
        assert ms is not None
        sizes = [fmt(p.sram_kib, 0) for p in ms.profiles]
        res = list(self.s.summary.resolutions)
        by: dict[Design, dict[str, str]] = {}
        for e in ms.entries:
            by.setdefault(e.design, {})[e.resolution] = fmt(e.profile_sram_kib, 0)
        rows = tuple((label(d), *(cells.get(r, "-") for r in res)) for d, cells in by.items())
        return Section(self.t("sec.minsram"), (
            Paragraph(self.t("minsram.intro", n=len(ms.profiles), list=", ".join(sizes))),
            Table((self.t("col.design"), *res), rows, self.t("minsram.table"),
                  align=("left", *("right",) * len(res)))), anchor="sram-needed")

    # ---- recommendations -------------------------------------------------------------------------------------
    def _reason(self, e: Any) -> str:
        if e.reason in ("sram_overhead", "offchip_bound_layer"):
            measured = pct(e.measured, signed=False)
        elif e.reason == "fps_loss":  # measured is the loss (a positive fraction)
            measured = pct(-e.measured) if e.measured is not None else "-"
        else:
            measured = fmt(e.measured, 2)
        return self.t(f"rec.reason.{e.reason}", res=e.resolution or self.key, measured=measured,
                      threshold=pct(e.threshold, signed=False, digits=0) if e.threshold is not None else "-")

    def recommendations(self) -> Section:
        rec = self.s.recommendation
        st = self.s.settings
        blocks: list[Any] = [Paragraph(self.t("rec.intro", device=self.device, key=self.key, n=rec.fitting,
                                              fps_loss=pct(st.fps_loss_limit, False, 0),
                                              overhead=pct(st.sram_overhead_limit, False, 0)))]
        if rec.fitting == 0:
            blocks.append(Note(self.t("rec.no_fit", key=self.key)))
        rs = rec.reduced_space
        rows = tuple((c.choice, ", ".join(c.kept) or "-", "; ".join(
            f"{x.value} ({', '.join(self._reason(r) for r in x.reasons)})" for x in c.excluded) or "-")
            for c in rs.choices)
        blocks.append(Section(self.t("rec.space", before=rs.size_before, after=rs.size_after), (
            Table((self.t("col.choice"), self.t("col.kept"), self.t("col.excluded")), rows,
                  self.t("rec.space_table")),
            CodeBlock("choices:\n" + "\n".join(f"  {c.choice}: [{', '.join(c.kept)}]" for c in rs.choices))),
            anchor="reduced-space"))
        for rk in rec.rankings:
            worst = rk.most_expensive or "-"
            parts = "/".join(rk.parts) or "-"
            cols = (self.t("col.rank"), rk.choice, self.t("col.fps"), self.t("col.fps_change"), self.t("col.sram_kib"),
                    *self._metric_cols(), self.t("col.part_saved", parts=parts, worst=worst), self.t("col.fits"),
                    self.t("col.anomalies"), self.t("col.kept"))
            rows2 = tuple((str(e.rank) if e.rank is not None else "-", e.value, fmt(e.fps, 2), pct(e.fps_change),
                           fmt(e.sram_kib), *self._metric_cells(e.design), pct(e.part_cycles_saved, signed=False),
                           self.t("yes") if e.fits else self.t("no"), ", ".join(e.anomalies) or self.t("none"),
                           self.t("yes") if e.kept else self.t("no")) for e in rk.entries)
            sub: list[Any] = [Table(cols, rows2, self.t("rec.ranking", choice=rk.choice),
                                    highlight=tuple("baseline" if e.is_baseline else None for e in rk.entries))]
            best = next((e for e in rk.entries if e.rank == 1), None)
            if best is not None and best.part_cycles_saved and best.value != worst:
                sub.append(Paragraph(self.t("rec.ranking_note", best=best.value, saved=pct(best.part_cycles_saved,
                                                                                            signed=False),
                                            parts=parts, worst=worst)))
            blocks.append(Section(self.t("rec.ranking", choice=rk.choice), tuple(sub),
                                  anchor=f"ranking-{_slug(rk.choice)}"))
        if rec.scenarios:
            cols = (self.t("col.scenario"), self.t("col.design"), self.t("col.fps"), self.t("col.fps_change"),
                    self.t("col.sram_kib"), self.t("col.rf"))
            rows3 = tuple((self.t(f"scenario.{sc.label}", thr=pct(st.accuracy_fps_loss, False, 0)), label(sc.design),
                           fmt(sc.fps, 2), pct(sc.fps_change), fmt(sc.sram_kib), fmt(sc.receptive_field, 0))
                          for sc in rec.scenarios)
            blocks.append(Section(self.t("rec.scenarios"), (Table(cols, rows3, self.t("rec.scenarios")),),
                                  anchor="scenarios"))
        return Section(self.t("sec.recommend"), tuple(blocks), anchor="recommendations")


def _slug(text: str) -> str:
    out = "".join(ch if ch.isalnum() else "-" for ch in text)
    return out.strip("-") or "x"

"""Every sentence of the study report, in English and Chinese. Same keys, same placeholders: the numbers
are formatted once (see `fmt`) and the two languages only differ in words."""

from __future__ import annotations

from typing import Any

T: dict[str, tuple[str, str]] = {
    "title": ("Study: {space}", "研究报告：{space}"),
    # ---- configuration
    "sec.config": ("Search configuration", "搜索配置"),
    "config.intro": ("Space **{space}** (network template `{network}`): {designs} networks x {resolutions} "
                     "input resolutions x {profiles} hardware profile(s) = {rows} compiled rows "
                     "({failed} failed).",
                     "搜索空间 **{space}**（网络模板 `{network}`）：{designs} 个网络 x {resolutions} 种输入分辨率 x "
                     "{profiles} 个硬件配置 = {rows} 次编译（失败 {failed} 次）。"),
    "config.choices": ("Searched choices", "搜索的选项"),
    "config.fixed": ("Fixed parameters", "固定参数"),
    "config.tied": ("`{param}` always equals `{choice}`.", "`{param}` 始终与 `{choice}` 相同。"),
    "config.resolutions": ("Input resolutions: {list}.", "输入分辨率：{list}。"),
    "config.device": ("Recommendations are for **{device}**; key results at **{key}**; baseline **{baseline}**.",
                      "推荐针对 **{device}**；关键结果分辨率 **{key}**；基线 **{baseline}**。"),
    "config.compiler": ("Measured with {compilers}.", "测量工具：{compilers}。"),
    "config.estimate": ("The compiler's cycle and FPS figures are estimates. Arm's Vela README (\"Performance "
                        "information\") says they are not accurate representations of real performance, serve the "
                        "compiler's own optimisation decisions, and should not be compared across different compiler "
                        "settings; for accurate figures it advises profiling on an FPGA (a Fixed Virtual Platform "
                        "gives approximate ones and is not cycle-accurate either). No published error bound for them "
                        "was found: small differences between designs are not evidence, and the chosen design should "
                        "be timed on the target.",
                        "编译器给出的周期与 FPS 数字是估计值。Arm 的 Vela README（“Performance information”一节）说明它们并不准确"
                        "代表真实性能，只供编译器自身做优化决策，也不应在不同编译设置之间比较；要得到准确数字，应在 FPGA 上运行并测量"
                        "（固定虚拟平台 FVP 只给出近似值，同样不是周期精确的）。未找到公开的误差范围：设计之间的"
                        "微小差异不能作为结论依据，选定的设计应在目标硬件上实测。"),
    "col.choice": ("choice", "选项"), "col.values": ("values", "取值"), "col.parameter": ("parameter", "参数"),
    "col.value": ("value", "值"), "col.profile": ("profile", "硬件配置"), "col.sram_kib": ("SRAM KiB", "SRAM KiB"),
    "col.flash_kib": ("flash KiB", "Flash KiB"), "col.arena_kib": ("arena limit KiB", "Arena 上限 KiB"),
    "col.design": ("design", "设计"), "col.fps": ("FPS", "FPS"), "col.fps_change": ("FPS vs baseline", "FPS 相对基线"),
    "col.sram_change": ("SRAM vs baseline", "SRAM 相对基线"), "col.fits": ("fits", "可部署"),
    "col.mark": ("note", "备注"), "col.resolution": ("resolution", "分辨率"), "col.layer": ("layer", "层"),
    "col.op": ("op", "算子"), "col.cycles": ("op cycles", "算子周期"), "col.net_share": ("% of network", "占网络 %"),
    "col.offflash": ("OffFlash AC", "OffFlash AC"), "col.dram": ("DRAM AC", "DRAM AC"),
    "col.offchip_share": ("off-chip %", "片外访问 %"), "col.baseline_sram": ("baseline SRAM KiB", "基线 SRAM KiB"),
    "col.overhead": ("overhead", "增幅"), "col.used_kib": ("used KiB", "使用 KiB"),
    "col.device_kib": ("device KiB", "设备 KiB"), "col.excess": ("used / device", "使用 / 设备"),
    "col.tensor": ("tensor", "张量"), "col.shape": ("C x H x W", "C x H x W"), "col.bytes": ("KiB", "KiB"),
    "col.cpu_layers": ("CPU layers", "CPU 层"), "col.fps_e2e": ("FPS end to end", "端到端 FPS"),
    "col.part": ("network part", "网络部分"), "col.share": ("% cycles", "周期 %"),
    "col.rank": ("rank", "排名"), "col.part_saved": ("{parts} cycles saved vs {worst}", "{parts} 周期相对 {worst} 节省"),
    "col.kept": ("kept", "保留"), "col.excluded": ("excluded (reason)", "排除（原因）"),
    "col.scenario": ("scenario", "场景"), "col.rf": ("receptive field", "感受野"),
    "col.min_sram": ("smallest SRAM KiB it runs on", "可运行的最小 SRAM KiB"), "col.anomalies": ("anomalies", "异常"),
    "yes": ("yes", "是"), "no": ("no", "否"), "none": ("none", "无"),
    "mark.fastest": ("fastest", "最快"), "mark.slowest": ("slowest", "最慢"), "mark.baseline": ("baseline", "基线"),
    "mark.over": ("over device memory", "超出设备内存"),
    # ---- key results
    "sec.key": ("Key results at {key} on {device}", "{key} 关键结果（{device}）"),
    "key.intro": ("{n} designs compiled; {fitting} fit the device. Fastest: **{fastest}** ({fastest_fps} FPS, "
                  "{fastest_change} vs baseline); slowest: **{slowest}** ({slowest_fps} FPS, {slowest_change}).",
                  "共编译 {n} 个设计，其中 {fitting} 个可部署到该设备。最快：**{fastest}**（{fastest_fps} FPS，相对基线 "
                  "{fastest_change}）；最慢：**{slowest}**（{slowest_fps} FPS，{slowest_change}）。"),
    "key.fastest_fitting": ("Fastest design that fits: **{design}** ({fps} FPS).",
                            "可部署设计中最快：**{design}**（{fps} FPS）。"),
    "key.table": ("FPS and SRAM at {key} on {device}, fastest first", "{key} 下的 FPS 与 SRAM（{device}），按速度排序"),
    "key.plot": ("FPS at {key} on {device}", "{key} 下的 FPS（{device}）"),
    # ---- all resolutions
    "sec.sweep": ("FPS and SRAM over every resolution", "各分辨率下的 FPS 与 SRAM"),
    "sweep.note": ("A `*` marks a design that does not fit the device ({device}) at that resolution.",
                   "`*` 表示该分辨率下超出设备（{device}）内存、无法部署。"),
    "sweep.fps_table": ("FPS by resolution", "各分辨率 FPS"), "sweep.sram_table": ("SRAM KiB by resolution",
                                                                                  "各分辨率 SRAM KiB"),
    "sweep.fps_plot": ("FPS over input resolution ({device})", "FPS 随输入分辨率变化（{device}）"),
    "sweep.sram_plot": ("SRAM used over input resolution ({device})", "SRAM 使用量随输入分辨率变化（{device}）"),
    "sweep.plot_subset": ("The plots show the {n} designs of the reduced space and the baseline; the tables show all.",
                          "图中只画出精简空间中的 {n} 个设计和基线；表格列出全部设计。"),
    "axis.resolution": ("input resolution (HxW)", "输入分辨率 (HxW)"), "axis.fps": ("inferences per second",
                                                                                "每秒推理次数"),
    "axis.sram": ("SRAM used (KiB)", "SRAM 使用量 (KiB)"), "axis.share": ("share of cycles (%)", "周期占比 (%)"),
    # ---- anomalies
    "sec.anomalies": ("Anomalies", "异常"),
    "anom.none": ("No anomaly of any kind was found on {device}.", "在 {device} 上没有发现任何异常。"),
    "anom.count": ("On {device}: {cliffs} FPS cliff(s), {offchip} design(s) with off-chip-bound layers, {over} "
                   "row(s) over the device memory, {overhead} choice value(s) with an SRAM overhead above {limit}, "
                   "{cpu} row(s) with CPU-fallback ops, {failed} failed compile(s).",
                   "在 {device} 上：FPS 断崖 {cliffs} 处，含片外访问瓶颈层的设计 {offchip} 个，超出设备内存 {over} 行，"
                   "SRAM 增幅超过 {limit} 的选项值 {overhead} 个，含 CPU 回退算子 {cpu} 行，编译失败 {failed} 次。"),
    "sec.cliff": ("(a) FPS that does not fall as resolution grows", "(a) 分辨率增大而 FPS 不降（断崖）"),
    "cliff.none": ("None: on every design FPS falls by more than {tol} at each larger input.",
                   "无：所有设计在每个更大的输入下 FPS 均下降超过 {tol}。"),
    "cliff.item": ("**{design}** runs {fps} FPS at {res} and {larger_fps} FPS at the larger {larger} ({excess}): FPS "
                   "does not fall although the input has {ratio}x the pixels; pixel scaling predicts {expected} FPS "
                   "at {res}. {cause}",
                   "**{design}** 在 {res} 下为 {fps} FPS，在更大的 {larger} 下为 {larger_fps} FPS（{excess}）：像素增加到 "
                   "{ratio} 倍而 FPS 没有下降；按像素比例 {res} 应约为 {expected} FPS。{cause}"),
    "cliff.cause.offchip_traffic": ("Cause: off-chip traffic takes {share} of the cycles at {res} against "
                                    "{larger_share} at {larger}.",
                                    "原因：{res} 下片外访问占 {share} 的周期，而 {larger} 下只占 {larger_share}。"),
    "cliff.cause.sram_at_arena_limit": ("Cause: SRAM use ({sram} KiB) is at or above the arena limit ({arena} KiB): "
                                        "the feature maps do not fit, so the compiler cascades and re-fetches weights.",
                                        "原因：SRAM 使用量（{sram} KiB）达到或超过 arena 上限（{arena} KiB）：特征图放不下，"
                                        "编译器采用级联调度并重复读取权重。"),
    "cliff.cause.unexplained": ("The data does not show why (neither off-chip share nor SRAM pressure differ).",
                                "数据未能解释原因（片外访问占比与 SRAM 压力均无明显差异）。"),
    "cliff.top": ("Layer whose cycles grew most beyond pixel scaling: `{name}` ({cycles} cycles, expected {expected}).",
                  "超出像素比例增长最多的层：`{name}`（{cycles} 周期，预期 {expected}）。"),
    "sec.offchip": ("(b) Layers dominated by off-chip traffic", "(b) 受片外访问主导的层"),
    "offchip.none": ("None: no layer spends {thr} or more of its cycles on off-chip (flash or DRAM) access.",
                     "无：没有层把 {thr} 以上的周期花在片外（Flash 或 DRAM）访问上。"),
    "offchip.rule": ("A layer is listed when its OffFlash or DRAM access cycles are at least {thr} of its op cycles "
                     "and it takes at least {min} of the network's cycles.",
                     "判定规则：某层的 OffFlash 或 DRAM 访问周期不少于其算子周期的 {thr}，且该层占网络周期不少于 {min}。"),
    "offchip.item": ("**{design}** at {res}: {n} layer(s) bound by off-chip traffic, {share} of the network's "
                     "cycles.", "**{design}** 在 {res}：{n} 层受片外访问限制，占网络周期的 {share}。"),
    "offchip.table": ("Off-chip-bound layers of {design} at {res}", "{design} 在 {res} 的片外访问瓶颈层"),
    "offchip.more": ("{n} more design/resolution pair(s) have such layers: {list}.",
                     "另有 {n} 个设计/分辨率组合存在此类层：{list}。"),
    "sec.over": ("(c) Designs that do not fit the device", "(c) 超出设备内存的设计"),
    "over.none": ("None: every design fits {device} ({sram} KiB SRAM) at every resolution.",
                  "无：所有设计在所有分辨率下都能放入 {device}（{sram} KiB SRAM）。"),
    "over.summary": ("{n} of {total} rows do not fit {device} ({sram} KiB SRAM, {flash} KiB flash). The compiler "
                     "accepts them (in Shared_Sram mode the SRAM size is only a target), but the device cannot run "
                     "them.", "{total} 行中有 {n} 行放不进 {device}（{sram} KiB SRAM，{flash} KiB Flash）。编译器仍然"
                     "接受（Shared_Sram 模式下 SRAM 大小只是目标值），但设备无法运行。"),
    "over.table": ("Designs over the device memory (first resolution at which each stops fitting)",
                   "超出设备内存的设计（每个设计开始超出的最小分辨率）"),
    "over.tensors": ("At {res}, **{design}** needs {used} KiB against {device} KiB. Largest live tensors at the IR's "
                     "activation peak (`{op}`, {peak} KiB):",
                     "在 {res}，**{design}** 需要 {used} KiB，设备只有 {device} KiB。IR 激活峰值处（`{op}`，"
                     "{peak} KiB）最大的活跃张量："),
    "over.alone": ("{n} of these tensors alone exceed the device SRAM.", "其中 {n} 个张量单独就超过设备 SRAM。"),
    "sec.overhead": ("(d) SRAM cost of a choice against the baseline", "(d) 选项相对基线的 SRAM 代价"),
    "overhead.none": ("No choice value uses more than {limit} extra SRAM compared with the baseline.",
                      "没有选项值比基线多用 {limit} 以上的 SRAM。"),
    "overhead.item": ("`{choice}={value}` (baseline `{base}`): up to {max} more SRAM ({mean} on average).",
                      "`{choice}={value}`（基线 `{base}`）：SRAM 最多增加 {max}（平均 {mean}）。"),
    "overhead.table": ("SRAM of {choice}={value} against {choice}={base}", "{choice}={value} 与 {choice}={base} 的 SRAM"),
    "sec.cpu": ("(e) Ops that fall back to the CPU", "(e) 回退到 CPU 的算子"),
    "cpu.none": ("None: every op of every design runs on the NPU.", "无：所有设计的全部算子都在 NPU 上运行。"),
    "cpu.note": ("The compiler's FPS leaves the CPU's share out; FPS end to end adds an estimate of it from the "
                 "profile's host MAC rate.", "编译器的 FPS 不含 CPU 部分；端到端 FPS 依据硬件配置中的主机 MAC 速率估计了"
                 "这部分时间。"),
    "sec.failed": ("Failed compiles", "编译失败"),
    # ---- cycles
    "sec.cycles": ("Where the cycles go", "周期分布"),
    "cycles.parts_plot": ("Share of cycles by network part at {key} ({device})", "{key} 下各网络部分的周期占比（{device}）"),
    "cycles.baseline": ("Baseline **{design}** at {key}: {parts}.", "基线 **{design}** 在 {key}：{parts}。"),
    "cycles.ops_table": ("Cycles by op type of the baseline at {key}", "基线在 {key} 下按算子类型的周期"),
    "cycles.dominant": ("In **{design}**, `{op}` takes {share} of the cycles ({npu} NPU op(s) for {ir} IR op(s)).",
                        "**{design}** 中 `{op}` 占 {share} 的周期（{ir} 个 IR 算子对应 {npu} 个 NPU 算子）。"),
    "cycles.cheaper.choice_in_sweep": ("Setting `{param}` from `{current}` to `{alt}` saves {saving} of all cycles.",
                                       "把 `{param}` 从 `{current}` 改为 `{alt}` 可节省总周期的 {saving}。"),
    "cycles.cheaper.space_lowering": ("The space fixes `{param}={current}`; `{alt}` is a cheaper lowering of the same "
                                      "operation.", "空间固定了 `{param}={current}`；`{alt}` 是同一运算更便宜的实现。"),
    "cycles.no_dominant": ("No single op type takes more than {thr} of the cycles in any design.",
                           "没有任何设计中单一算子类型占周期超过 {thr}。"),
    # ---- smallest SRAM
    "sec.minsram": ("How much SRAM each design needs", "各设计所需 SRAM"),
    "minsram.intro": ("The sweep compiled every design for {n} SRAM sizes ({list} KiB). The table gives the smallest "
                      "on which it runs (`-`: none of them).",
                      "每个设计都针对 {n} 种 SRAM 大小（{list} KiB）编译。表中给出其可运行的最小 SRAM（`-` 表示都不行）。"),
    "minsram.table": ("Smallest SRAM (KiB) on which each design runs", "各设计可运行的最小 SRAM（KiB）"),
    # ---- recommendations
    "sec.recommend": ("Recommendations", "推荐"),
    "rec.intro": ("Only designs that fit {device} at {key} are recommended ({n} of them). Thresholds: FPS loss above "
                  "{fps_loss} vs baseline, SRAM overhead above {overhead}, or any anomaly excludes a value.",
                  "只推荐在 {key} 下能放入 {device} 的设计（共 {n} 个）。排除条件：相对基线 FPS 损失超过 {fps_loss}、SRAM "
                  "增幅超过 {overhead}，或存在任何异常。"),
    "rec.space": ("Reduced search space: {before} -> {after} networks", "精简后的搜索空间：{before} -> {after} 个网络"),
    "rec.space_table": ("Choices kept and excluded", "保留与排除的选项"),
    "rec.reason.fps_cliff": ("FPS cliff at {res}", "{res} 出现 FPS 断崖"),
    "rec.reason.offchip_bound_layer": ("off-chip-bound layers at {res} ({measured} >= {threshold})",
                                       "{res} 有片外访问瓶颈层（{measured} >= {threshold}）"),
    "rec.reason.cpu_fallback": ("CPU-fallback ops", "存在 CPU 回退算子"),
    "rec.reason.compile_failed": ("compile failed", "编译失败"),
    "rec.reason.sram_overhead": ("SRAM +{measured} at {res} (limit {threshold})", "{res} SRAM +{measured}（上限 {threshold}）"),
    "rec.reason.fps_loss": ("FPS {measured} at {res} (limit -{threshold})", "{res} FPS {measured}（上限 -{threshold}）"),
    "rec.reason.never_fits": ("never fits the device at {res}", "在 {res} 下始终放不进设备"),
    "rec.ranking": ("Ranking of `{choice}` (other choices at baseline)", "`{choice}` 排名（其他选项取基线）"),
    "rec.ranking_note": ("`{best}` spends {saved} fewer {parts} cycles than `{worst}`.",
                         "`{best}` 的 {parts} 周期比 `{worst}` 少 {saved}。"),
    "rec.scenarios": ("Scenarios", "场景推荐"),
    "scenario.safe_baseline": ("safe baseline: lowest SRAM, no anomaly", "安全基线：SRAM 最低且无异常"),
    "scenario.speed_priority": ("speed priority: fastest without anomaly", "速度优先：无异常中最快"),
    "scenario.accuracy_priority": ("accuracy priority: largest receptive field within {thr} FPS loss of the fastest",
                                   "精度优先：在最快设计 {thr} FPS 损失以内感受野最大"),
    "rec.no_fit": ("No design fits the device at {key}: nothing can be recommended; see how much SRAM each needs.",
                   "在 {key} 下没有设计能放入设备，无法推荐；请参考各设计所需 SRAM。"),
    # ---- accuracy (trained results)
    "sec.accuracy": ("Accuracy of the trained designs", "已训练设计的精度"),
    "acc.budget": ("{epochs} epoch(s) x {samples} synthetic training samples at {res}, batch {batch}, seed(s) {seeds}",
                   "在 {res} 上用 {samples} 个合成训练样本训练 {epochs} 轮，batch {batch}，随机种子 {seeds}"),
    "acc.intro": ("{runs} training run(s) of {designs} design(s), each trained stand-alone from scratch: {budget}; "
                  "{minutes} min of training in all. {metric} is measured with each run's best checkpoint on {val} "
                  "validation samples at the training resolution {train_res} and at the deployment resolution "
                  "{deploy_res} (the same scenes rendered larger, so motions are larger in pixels). FPS and SRAM: "
                  "{device} at {fps_res}.",
                  "共 {runs} 次训练，涉及 {designs} 个设计，每个设计从零开始单独训练：{budget}；训练总计 {minutes} 分钟。"
                  "{metric} 用每次训练的最佳检查点在 {val} 个验证样本上测量，分别在训练分辨率 {train_res} 和部署分辨率 "
                  "{deploy_res} 下（同一批场景以更大尺寸渲染，因此以像素计的运动更大）。FPS 与 SRAM：{device}，{fps_res}。"),
    "acc.caveat": ("This is short CPU training on synthetic data, not a converged FlyingChairs model: the figures "
                   "compare designs under this budget only. Absolute {metric} values are not comparable with published "
                   "ones, and a ranking may change with longer training.",
                   "这是在合成数据上的短时 CPU 训练，不是收敛的 FlyingChairs 模型：这些数字只在该训练预算下比较各设计。"
                   "{metric} 的绝对值不能与文献数值比较，训练更久后排名也可能改变。"),
    "acc.noise": ("Seed noise: the largest seed-to-seed spread of {metric} among the {n} design(s) trained with "
                  "{k} seeds is {train} at {train_res} and {deploy} at {deploy_res}. Below, a difference counts as "
                  "a win or a loss only when it is larger than that.",
                  "随机种子噪声：在用 {k} 个种子训练的 {n} 个设计中，{metric} 的最大种子间差异在 {train_res} 下为 "
                  "{train}，在 {deploy_res} 下为 {deploy}。下文中只有超过该值的差异才算作更好或更差。"),
    "acc.noise_unknown": ("Every design was trained with one seed: the seed noise is unknown, so the differences "
                          "below are reported without calling any of them a win or a loss.",
                          "每个设计只用一个随机种子训练：种子噪声未知，因此下文只报告差异，不判定孰优孰劣。"),
    "acc.zero": ("For reference, an all-zero output (for optical flow: no motion at all) scores {zero_train} at "
                 "{train_res} and {zero_deploy} at {deploy_res}. Designs better than that by more than the seed "
                 "noise: {n_train} of {designs} at {train_res}, {n_deploy} at {deploy_res}.",
                 "作为参照，全零输出（对光流而言即完全不动）在 {train_res} 下得到 {zero_train}，在 {deploy_res} 下得到 "
                 "{zero_deploy}。比它好且差距超过种子噪声的设计：{train_res} 下 {designs} 个中有 {n_train} 个，"
                 "{deploy_res} 下有 {n_deploy} 个。"),
    "acc.zero_unknown_noise": ("For reference, an all-zero output (for optical flow: no motion at all) scores "
                               "{zero_train} at {train_res} and {zero_deploy} at {deploy_res}. Designs better than "
                               "that at all (the seed noise is unknown): {n_train} of {designs} at {train_res}, "
                               "{n_deploy} at {deploy_res}.",
                               "作为参照，全零输出（对光流而言即完全不动）在 {train_res} 下得到 {zero_train}，在 "
                               "{deploy_res} 下得到 {zero_deploy}。比它好的设计（种子噪声未知）：{train_res} 下 "
                               "{designs} 个中有 {n_train} 个，{deploy_res} 下有 {n_deploy} 个。"),
    "acc.not_learned": ("No design does better than the all-zero output at {res} by more than the noise: at this "
                        "budget the networks have not learned the task there, and the comparisons at {res} say "
                        "nothing about which design is more accurate.",
                        "在 {res} 下没有设计比全零输出好且超过噪声：在该训练预算下网络尚未学会这一任务，因此 {res} 下的比较"
                        "不能说明哪个设计更准确。"),
    "acc.unmatched": ("{n} trained design(s) are not in this sweep: they have no FPS and are left out of the "
                      "comparisons.", "{n} 个已训练设计不在本次扫描中：没有 FPS，不参与比较。"),
    "acc.table": ("{metric} of every trained design (mean over seeds; spread with two or more seeds) after {budget}",
                  "各已训练设计的 {metric}（多个种子时取平均并给出差异），训练预算：{budget}"),
    "acc.front": ("On the {metric}/FPS Pareto front among designs that fit (mean {metric}, seed noise ignored): at "
                  "{res}: {list}.",
                  "在可部署设计中位于 {metric}/FPS 帕累托前沿（按平均 {metric}，不考虑种子噪声）：{res}：{list}。"),
    "acc.front_none": ("No trained design that fits the device has an FPS at {res}: no front.",
                       "没有可部署且有 FPS 数据的已训练设计（{res}）：无前沿。"),
    "acc.plot": ("{metric} at {res} against FPS at {fps_res} (trained designs that fit; front joined)",
                 "{res} 下的 {metric} 与 {fps_res} 下的 FPS（可部署的已训练设计，连线为前沿）"),
    "acc.factor": ("`{choice}`: each value against `{ref}`, other choices at the baseline",
                   "`{choice}`：各取值与 `{ref}` 比较，其他选项取基线"),
    "acc.factor_table": ("{choice} against {ref} after {budget}", "{choice} 与 {ref} 的比较，训练预算：{budget}"),
    "acc.factor_item": ("**{value}** against `{ref}`: FPS {fps_change}; at {train_res} {train}; at {deploy_res} "
                        "{deploy}.",
                        "**{value}** 与 `{ref}` 相比：FPS {fps_change}；在 {train_res}：{train}；在 {deploy_res}："
                        "{deploy}。"),
    "acc.not_fit": ("It does not fit {device} at {res}: it could not be deployed there whatever its accuracy.",
                    "它在 {res} 下放不进 {device}：无论精度如何都无法在该设备上部署。"),
    "acc.outcome.costlier_better": ("{metric} {delta} (noise {noise}), more accurate beyond the noise: worth its "
                                    "cycles (a trade-off)",
                                    "{metric} {delta}（噪声 {noise}），精度提升超过噪声：值得付出这些周期（属于权衡）"),
    "acc.outcome.costlier_no_gain": ("{metric} {delta} (noise {noise}), not more accurate beyond the noise: not worth "
                                     "its cycles",
                                     "{metric} {delta}（噪声 {noise}），精度提升未超过噪声：不值得付出这些周期"),
    "acc.outcome.cheaper_no_loss": ("{metric} {delta} (noise {noise}), not less accurate beyond the noise: the "
                                    "saving costs no measurable accuracy",
                                    "{metric} {delta}（噪声 {noise}），精度下降未超过噪声：节省周期没有可测的精度代价"),
    "acc.outcome.cheaper_worse": ("{metric} {delta} (noise {noise}), less accurate beyond the noise: a trade-off",
                                  "{metric} {delta}（噪声 {noise}），精度下降超过噪声：属于权衡"),
    "acc.outcome.noise_unknown": ("{metric} {delta}, seed noise unknown: no verdict",
                                  "{metric} {delta}，种子噪声未知：不下结论"),
    "acc.outcome.missing": ("not measured", "未测量"),
    "acc.recommended": ("At {res}, of the values {source} keeps ({kept}), on this comparison's {metric}/FPS front: "
                        "{on}; not on it: {off}. Values it drops that are on the front: {dropped}.",
                        "在 {res}，{source} 保留的取值（{kept}）中，位于本比较 {metric}/FPS 前沿的：{on}；不在前沿的：{off}。"
                        "被其排除却位于前沿的取值：{dropped}。"),
    "acc.source.config": ("the recommendation named in `report.recommended`", "`report.recommended` 中给出的推荐"),
    "acc.source.study": ("this study's reduced space", "本研究的精简空间"),
    "acc.key_note": ("{metric} columns: trained designs only (`-`: not trained), after {budget}; short CPU training, "
                     "not a converged model (see the accuracy section).",
                     "{metric} 列只对已训练设计给出（`-` 表示未训练），训练预算：{budget}；短时 CPU 训练，不是收敛模型"
                     "（见精度一节）。"),
    "col.metric_at": ("{metric} {res}", "{metric} {res}"), "col.seeds": ("seeds", "种子"),
    "col.spread": ("spread {res}", "种子差异 {res}"), "col.front": ("on front", "位于前沿"),
    "col.delta_at": ("{metric} vs ref {res}", "{metric} 相对参考 {res}"), "col.vs_ref": ("FPS vs ref", "FPS 相对参考"),
    "mark.reference": ("reference", "参考"),
}


def t(lang: str, msg: str, /, **kw: Any) -> str:
    en, zh = T[msg]
    return (zh if lang == "zh" else en).format(**kw)


def fmt(v: float | None, digits: int = 1) -> str:
    """A number as the report prints it everywhere (tables and text alike)."""
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def sfmt(v: float | None, digits: int = 3) -> str:
    """A signed number (a difference)."""
    if v is None:
        return "-"
    return f"{v:+,.{digits}f}"


def pct(v: float | None, signed: bool = True, digits: int = 1) -> str:
    if v is None:
        return "-"
    return f"{100 * v:+.{digits}f}%" if signed else f"{100 * v:.{digits}f}%"

"""The words figures draw, in 中文: {English word or template: translation}.

viz holds English only; every title, axis title, colour-bar title and legend name it draws
goes through `Style.say`, and `current_style()` hands it these pairs under 中文. Terms follow
the seeds (查询, 键, 值, 注意力权重, 掩码, 分数 …); punctuation is full-width.
"""

from __future__ import annotations

from viz.style import Style

FIGURE_WORDS_ZH = {
    # block kinds, and the titles the pages build from them
    "encoder.self": "编码器自注意力",
    "decoder.self": "解码器自注意力",
    "decoder.cross": "交叉注意力",
    "{kind} · layer {layer}": "{kind} · 第 {layer} 层",
    "{key} · head {head}": "{key} · 头 {head}",
    "{key} · head {head} · query {query}": "{key} · 头 {head} · 查询 {query}",
    "{key} · mean over heads": "{key} · 所有头的平均",
    "rollout {kind} 0..{layer}": "注意力展开:{kind} 第 0..{layer} 层",
    "layer {layer} · step {step}": "第 {layer} 层 · 第 {step} 步",
    "{key}, head {head}": "{key},头 {head}",
    # head metrics (viz.metrics.METRIC_TITLES) and their table
    "entropy (nats)": "熵(奈特)",
    "mean attention distance (positions)": "平均注意力距离(位置数)",
    "previous-token share": "前一个词元的权重占比",
    "first-token (sink) share": "首个词元(汇聚点)的权重占比",
    "self share": "自身的权重占比",
    "block": "模块",
    "token": "词元",
    "probability": "概率",
    "model": "模型",
    "step": "步",
    "formula (bytes)": "公式(字节)",
    # Variants: the parameters / latency tables and the GPU benchmark (READABLE headers)
    "variant": "变体",
    "query heads": "查询头数",
    "K/V heads": "K/V 头数",
    "head dim": "每头维度",
    "decoder layers": "解码器层数",
    "parameters": "参数量",
    "KV bytes / token (fp32)": "每词元 KV 字节数(fp32)",
    "KV MiB at 1,024 tokens": "1,024 个词元的 KV(MiB)",
    "context": "上下文(词元)",
    "ms / token": "毫秒 / 词元",
    "median": "中位数(毫秒)",
    "tokens": "词元数",
    "formula_bytes": "公式(字节)",
    "measured_bytes": "实测(字节)",
    "batch": "批大小",
    "context (tokens)": "上下文(词元)",
    "status": "状态",
    "cache capacity (tokens)": "缓存容量(词元)",
    "prefill chunk (tokens)": "预填充分块(词元)",
    "prefill (s)": "预填充(秒)",
    "decode (ms / step)": "解码(毫秒 / 步)",
    "decode p10 (ms)": "解码 p10(毫秒)",
    "decode p90 (ms)": "解码 p90(毫秒)",
    "tokens / s": "词元 / 秒",
    "KV bytes (allocator)": "KV 字节数(分配器)",
    "KV bytes (allocator blocks)": "KV 字节数(分配器块)",
    "KV bytes (formula)": "KV 字节数(公式)",
    "formula = allocator": "公式 = 分配器",
    "weight bytes": "权重字节数",
    "KV bytes read / step": "每步读取的 KV 字节数",
    "achieved GB/s": "实测 GB/s",
    "share of copy bandwidth": "占复制带宽的比例",
    "graph step (ms)": "图模式单步(毫秒)",
    "graph: share of copy bandwidth": "图模式:占复制带宽的比例",
    "graph decode (ms / step)": "图模式解码(毫秒 / 步)",
    "graph decode p10 (ms)": "图模式解码 p10(毫秒)",
    "graph decode p90 (ms)": "图模式解码 p90(毫秒)",
    "graph tokens / s": "图模式 词元 / 秒",
    "graph KV bytes read / step": "图模式每步读取的 KV 字节数",
    "graph decode: share of copy bandwidth": "图模式解码:占复制带宽的比例",
    "graph decode splits": "图模式解码分段数",
    "notes": "备注",
    "KV cache (GiB)": "KV 缓存(GiB)",
    "speed-up vs MHA (×)": "相对 MHA 的加速(×)",
    "KV memory vs MHA (×)": "相对 MHA 的 KV 内存(×)",
    "graph speed-up vs MHA (×)": "图模式相对 MHA 的加速(×)",
    "Decode latency per token": "每个词元的解码延迟",
    "KV-cache memory (allocator)": "KV 缓存内存(分配器)",
    "Achieved fraction of copy bandwidth": "实测带宽占复制带宽的比例",
    "ms per step": "毫秒 / 步",
    "fraction": "比例",
    "{device}: decode latency, batch {batch}": "{device}:解码延迟,批大小 {batch}",
    "measured (bytes)": "实测(字节)",
    # heatmaps and axes
    "query": "查询",
    "key": "键",
    "value": "值",
    "weight": "注意力权重",
    "Δ weight": "权重变化 Δ",
    "mean weight": "平均注意力权重",
    "weight / head max": "权重 / 该头最大值",
    "rollout": "注意力展开",
    "head": "头",
    "layer": "层",
    "head {h}": "头 {h}",
    "dimension": "维度",
    "position": "位置",
    "similarity": "相似度",
    "score": "分数",
    "score −∞": "分数 −∞",
    "may attend": "可关注",
    "mean |Δ|": "平均 |Δ|",
    "bias": "偏置",
    "slope": "斜率",
    "key position": "键位置",
    "query position": "查询位置",
    "key positions (blocks of {b})": "键位置(每块 {b} 个)",
    "query positions (blocks of {b})": "查询位置(每块 {b} 个)",
    " (blocks of {b})": "(每块 {b} 个)",
    "key {a}–{b}": "键 {a}–{b}",
    "query {a}–{b}": "查询 {a}–{b}",
    "Overview: {tq}×{tk} averaged in {b}×{b} blocks": "概览:{tq}×{tk},按 {b}×{b} 分块平均",
    "Top {k} keys per query ({tq} queries)": "每个查询的前 {k} 个键(共 {tq} 个查询)",
    # masks and Q·K
    "mask (may attend)": "掩码(可关注)",
    "scores (pre-softmax)": "分数(softmax 之前)",
    "weights (softmax)": "注意力权重(softmax 之后)",
    "scores (pre-softmax) = q·k/√d, computed here": "分数(softmax 之前)= q·k/√d,此处计算",
    "q_d·k_d for the top keys (row sum × scale = score before bias)": (
        "得分最高的键的 q_d·k_d(行和 × 缩放 = 加偏置前的分数)"
    ),
    "q_d·k_d": "q_d·k_d",
    "−∞ (masked)": "−∞(被掩码)",
    "masked (−∞)": "被掩码(−∞)",
    "masked (weight 0)": "被掩码(权重为 0)",
    "Q·K for query {query}: {token} (head {head})": "查询 {query}:{token} 的 Q·K(头 {head})",
    # the head view and Q·K of one query of a long input (a selection of keys)
    "… {n} tokens …": "… {n} 个词元 …",
    "query {q}: {token} · keys {a}–{b} and its {k} strongest keys of {n}": (
        "查询 {q}:{token} · 键 {a}–{b},以及共 {n} 个键中它权重最大的 {k} 个"
    ),
    "weight on the shown keys: {shares}": "所显示的键所占权重:{shares}",
    "weight over all {n} keys (the shown keys marked)": "全部 {n} 个键上的权重(标出所显示的键)",
    "weights (softmax over all {n} keys)": "注意力权重(对全部 {n} 个键做 softmax)",
    "shown keys": "所显示的键",
    "a selection of {n} of {t} keys: the {k} strongest and {a}–{b}, by position · "
    "they hold {share} of the weight (a softmax over all {t} keys)": (
        "从 {t} 个键中选出 {n} 个:权重最大的 {k} 个和 {a}–{b},按位置排列 · "
        "它们占权重的 {share}(softmax 针对全部 {t} 个键)"
    ),
    # decoding, ablation
    "decoder self-attention (keys so far)": "解码器自注意力(已生成的键)",
    "cross-attention (source keys)": "交叉注意力(源序列的键)",
    "intact": "完整模型",
    "heads off": "关闭这些头后",
    "probability (missing bar: not in that top-k)": "概率(缺少的柱:不在该 top-k 中)",
    "next token": "下一个词元",
    # KV cache, latency
    "KV cache": "KV 缓存",
    "KV cache vs sequence length": "KV 缓存与序列长度",
    "KV-cache bytes": "KV 缓存字节数",
    "formula": "公式",
    "measured (cache.bytes_used)": "实测(cache.bytes_used)",
    "{label} (formula)": "{label}(公式)",
    "{label} (measured)": "{label}(实测)",
    "generation step": "生成步",
    "sequence length (tokens)": "序列长度(词元)",
    "decode latency on this machine": "本机解码延迟",
    "decode ms / token": "每个词元的解码毫秒数",
    "ms per decoded token (CPU, best of 5)": "每个解码词元的毫秒数(CPU,5 次取最佳)",
}

# The head-metrics table's columns (viz.metrics.head_metrics' keys) as readers read them,
# with units; under 中文 each goes through FIGURE_WORDS_ZH as well.
METRIC_COLUMNS = {
    "entropy": "entropy (nats)",
    "distance": "mean attention distance (positions)",
    "prev_token": "previous-token share",
    "first_token": "first-token (sink) share",
    "self": "self share",
}


def block_label(style: Style, key: str) -> str:
    """A block key for a figure title: `encoder.self.3` as is in English (the engine's name),
    "编码器自注意力 · 第 3 层" under 中文."""
    if not style.words:
        return key
    kind, _, layer = key.rpartition(".")
    return style.say("{kind} · layer {layer}", kind=style.say(kind), layer=layer)


def translated_figure(fig, style: Style):
    """A figure built elsewhere (bench/plot_results.py's JSON) in the style's words: its
    title (the part before " — ", the device and date after it kept), axis titles and
    legend names go through `style.say`."""
    if not style.words:
        return fig

    def say(text):
        head, sep, tail = str(text).partition(" — ")
        return style.say(head) + ("—" + tail if sep else "")

    if fig.layout.title and fig.layout.title.text:
        fig.layout.title.text = say(fig.layout.title.text)
    for name in fig.layout:
        axis = fig.layout[name]
        if name.startswith(("xaxis", "yaxis")) and axis.title and axis.title.text:
            axis.title.text = say(axis.title.text)
    for a in fig.layout.annotations or ():
        if a.text:
            a.text = say(a.text)
    for t in fig.data:
        if getattr(t, "name", None):
            t.name = say(t.name)
    return fig


def readable_columns(df, style: Style, names: dict | None = None):
    """A table with readable (and, under 中文, translated) headers: `names` maps the data's
    column names to readers' ones first."""
    names = names or {}
    return df.rename(columns=lambda c: style.say(names.get(c, c)))

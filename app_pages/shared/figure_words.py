"""The words figures draw, in 中文: {English word or template: translation}.

viz holds English only; every title, axis title, colour-bar title and legend name it draws
goes through `Style.say`, and `current_style()` hands it these pairs under 中文. Terms follow
the seeds (查询, 键, 值, 注意力权重, 掩码, 分数 …); punctuation is full-width.
"""

from __future__ import annotations

FIGURE_WORDS_ZH = {
    # heatmaps and axes
    "query": "查询",
    "key": "键",
    "value": "值",
    "weight": "注意力权重",
    "Δ weight": "权重变化 Δ",
    "mean weight": "平均注意力权重",
    "weight / head max": "权重 / 该头最大值",
    "rollout": "注意力 rollout",
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
    "q_d·k_d for the top keys (row sum × scale = score before bias)":
        "得分最高的键的 q_d·k_d(行和 × 缩放 = 加偏置前的分数)",
    "q_d·k_d": "q_d·k_d",
    "−∞ (masked)": "−∞(被掩码)",
    "masked (−∞)": "被掩码(−∞)",
    "Q·K for query {query}: {token} (head {head})": "查询 {query}:{token} 的 Q·K(头 {head})",
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

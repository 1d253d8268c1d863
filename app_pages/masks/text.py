"""Interface text of the Masks page, English and 中文: {key: (en, zh)}."""

MASKS_TEXT = {
    "choose": ("Choose…", "请选择…"),
    "title": ("Masks: which keys may a query read?", "掩码:查询可以读取哪些键?"),
    "intro": (
        "A mask removes keys before the softmax: their score becomes −∞, so their weight is "
        "exactly 0 and the remaining weights of the row are renormalised to sum to 1.",
        "掩码在 softmax 之前去掉某些键:它们的分数变成 −∞,权重恰好为 0,该行剩下的权重重新"
        "归一化,和为 1。",
    ),
    "kinds_note": (
        "Encoder and decoder models; the encoder-decoders' masks are on the Attention page.",
        "这里提供编码器和解码器模型;编码器-解码器的掩码见“注意力”页。",
    ),
    "empty": ("Type a sentence to see its masks.", "请输入一句话以查看掩码。"),
    "kept_first": (
        "Only the first {kept} of the text's {n:,} tokens are drawn: this page draws at most "
        "three {kept} × {kept} maps, so the text was cut there.",
        "只绘制了文本 {n:,} 个词元中的前 {kept} 个:本页最多绘制三张 {kept} × {kept} 的图,"
        "所以文本在此处截断。",
    ),
    "kept_first2": (
        "Second sentence: only the first {kept} of its {n:,} tokens are used (the page draws "
        "at most {kept} × {kept} maps).",
        "第二句:只使用其 {n:,} 个词元中的前 {kept} 个(本页最多绘制 {kept} × {kept} 的图)。",
    ),
    "computing": ("Computing attention with its scores for {block}",
                  "正在计算 {block} 的注意力及其分数"),
    "mode": ("Mask", "掩码"),
    "mode_none": ("none (every key)", "无(所有键)"),
    "mode_causal": ("causal (no future keys)", "因果(看不到未来的键)"),
    "mode_padding": ("padding (batch of two)", "填充(两句一批)"),
    "text2": ("Second sentence of the batch", "同一批中的第二句"),
    "item": ("Show", "显示"),
    "item_n": ("sentence {n}", "第 {n} 句"),
    "padding_note": (
        "The two sentences run as one batch, right-padded to {t} positions: sentence {n} has "
        "{real} real tokens and {pad} pad tokens. The pad keys are masked for every query.",
        "两句作为一批运行,右侧填充到 {t} 个位置:第 {n} 句有 {real} 个真实词元和 {pad} 个填充"
        "词元。所有查询都看不到填充的键。",
    ),
    "no_padding": (
        "Sentence {n} is the longer one, so it has no padding: show the other one, or make "
        "it shorter.",
        "第 {n} 句更长,所以没有填充:请显示另一句,或把它改短。",
    ),
    "padding_decoder": (
        "A decoder keeps its causal mask under padding as well.",
        "解码器在填充时仍保留因果掩码。",
    ),
    "window": ("Sliding window (0 = off)", "滑动窗口(0 = 关闭)"),
    "window_help": (
        "Each query keeps at most this many keys: under a causal mask the last N up to "
        "itself, otherwise the keys within N − 1 positions on either side.",
        "每个查询最多保留这么多键:因果掩码下是到自己为止的最后 N 个,否则是两侧各 N − 1 个"
        "位置以内的键。",
    ),
    "knockout": ("Knock out key tokens", "屏蔽某些键词元"),
    "knockout_help": (
        "No query may attend to these positions (in both sentences of a padded batch).",
        "任何查询都不能关注这些位置(填充批次中两句都适用)。",
    ),
    "block": ("Layer", "层"),
    "head": ("Head", "头"),
    "figure_help": (
        "Left: the boolean mask (dark = may attend). Middle: scores q·k/√d before softmax; "
        "grey cells marked × are −∞. Right: the softmax weights — exactly 0 where masked.",
        "左:布尔掩码(深色 = 可以关注)。中:softmax 之前的分数 q·k/√d;标 × 的灰色格子是 "
        "−∞。右:softmax 权重——被屏蔽处恰好为 0。",
    ),
    "changes": ("What changes in the output", "输出发生了什么变化"),
    "changes_help": (
        "Compared with the same sentence on its own under the model's default mask "
        "({default}).",
        "与同一句话单独运行、使用模型默认掩码({default})的结果相比。",
    ),
    "default_encoder": ("none", "无"),
    "default_decoder": ("causal", "因果"),
    "cosine": ("Embedding cosine to the default run", "与默认运行的句向量余弦相似度"),
    "max_change_head": ("Max |Δ weight|, this head", "本头最大 |Δ 权重|"),
    "max_change_layer": ("Max |Δ weight|, all heads of this layer", "本层所有头最大 |Δ 权重|"),
    "masked_cells": ("Masked cells", "被屏蔽的格子"),
    "topk_default": ("Next token, default run", "下一个词元(默认运行)"),
    "topk_masked": ("Next token, with this mask", "下一个词元(使用当前掩码)"),
    "token": ("token", "词元"),
    "prob": ("probability", "概率"),
    "load_failed": ("Could not load {name}: {msg}", "无法加载 {name}:{msg}"),
    "panel_mask": ("mask (may attend)", "掩码(可以关注)"),
    "panel_scores": ("scores (pre-softmax)", "分数(softmax 之前)"),
    "panel_weights": ("weights (softmax)", "权重(softmax 之后)"),
    "fig_title": ("{block}, head {head}", "{block},头 {head}"),
    "no_key_left": (
        "No key is left for query {rows}: every key is masked, so its row of weights is all 0 "
        "(no distribution at all). Knock out fewer keys.",
        "查询 {rows} 没有可关注的键:所有键都被掩码,因此这一行的权重全为 0(不构成概率分布)。"
        "请少屏蔽一些键。",
    ),
}

"""Interface text of the Attention page, English and 中文: {key: (en, zh)}."""

ATTENTION_TEXT = {
    "title": ("Where does each head look?", "每个注意力头在看哪里?"),
    "intro": (
        "Type a sentence. Every head of every layer turns each token (query) into a "
        "probability distribution over the tokens it may read (keys).",
        "输入一句话。每一层的每个头都会把每个词元(查询)变成它可读取的词元(键)上的概率分布。",
    ),
    "target_help": (
        "Decoder input. Empty: the model's own greedy decode.",
        "解码器的输入。留空:使用模型自己的贪心解码结果。",
    ),
    "target_placeholder": ("empty → greedy decode", "留空 → 贪心解码"),
    "generate": ("Generate N tokens first", "先生成 N 个词元"),
    "generate_help": (
        "Greedy tokens appended to the text before the maps are recorded.",
        "在记录注意力之前,先把贪心生成的词元接在文本后面。",
    ),
    "no_greedy": (
        "{name} has random weights: its greedy decode is meaningless (and would run {n} "
        "steps), so the source text is used as the decoder input. Type a target to change it.",
        "{name} 的权重是随机的:它的贪心解码没有意义(而且要运行 {n} 步),因此改用源文本作为"
        "解码器输入。可在上方输入目标序列。",
    ),
    "block": ("Attention block", "注意力模块"),
    "layer": ("Layer", "层"),
    "head": ("Head", "头"),
    "tokens": ("Tokens ({n})", "词元({n} 个)"),
    "not_kept": (
        "This layer's maps take {mb:,.0f} MiB, more than the whole result cache ({budget:,.0f} "
        "MiB): they are computed again on every change on this page. Start the app with "
        "{var}={want} (MiB) to keep them.",
        "这一层的注意力图占 {mb:,.0f} MiB，超过整个结果缓存（{budget:,.0f} MiB）：本页每次改动都会"
        "重新计算。启动应用时设置 {var}={want}（单位 MiB）即可保留它们。"),
    "crowds": (
        "This layer's maps take {mb:,.0f} MiB of the {budget:,.0f} MiB result cache: the tabs' "
        "results push each other out of it, and views you return to are computed again. "
        "Start the app with {var}={want} (MiB) to keep them.",
        "这一层的注意力图占 {budget:,.0f} MiB 结果缓存中的 {mb:,.0f} MiB：各标签页的结果会互相挤出"
        "缓存，回到某个视图时要重新计算。启动应用时设置 {var}={want}（单位 MiB）即可保留它们。"),
    "long": (
        "{n} tokens: long input. Maps are drawn at full resolution, one pixel per cell, with "
        "an overview in blocks, top-k and a zoom window one click away. After this view, one "
        "background pass reads every layer for the other layers and tabs.",
        "{n} 个词元:长输入。注意力图以完整分辨率绘制(每格一个像素),分块概览、top-k 和缩放窗口"
        "一键可得。本视图之后,后台会逐层读取一次,供其他层和标签页使用。",
    ),
    "generated": ("Generated", "生成结果"),
    "next_tokens": ("Next-token top-k", "下一个词元 top-k"),
    "tab_head": ("Head", "单个头"),
    "tab_model": ("Model view", "模型总览"),
    "tab_lines": ("Head view", "连线视图"),
    "tab_qk": ("Q·K", "Q·K"),
    "tab_metrics": ("Head metrics", "头指标"),
    "tab_agg": ("Aggregations", "聚合"),
    "tab_ablation": ("Ablation", "消融"),
    "tab_cross": ("Cross-attention", "交叉注意力"),
    "tab_steps": ("Generation steps", "逐步生成"),
    "tab_contrib": ("Contributions", "贡献"),  # its own text: CONTRIBUTIONS_TEXT below
    "ex_head": (
        "Row = query token, column = key token; each row sums to 1. Hover a cell for the "
        "query, the key and the weight. Repeated tokens keep their own row and column. "
        "Drag to zoom, double-click to reset.",
        "行是查询词元,列是键词元;每一行的和为 1。悬停在格子上可看到查询、键和权重。重复的词元"
        "各占一行一列。拖动可放大,双击复原。",
    ),
    "ex_model": (
        "Every head of every layer on one colour scale: vertical stripes are heads that "
        "look at one token (often [CLS]/[SEP] or the first token), diagonals look at "
        "neighbours. Click a thumbnail (or pick one below) to open it.",
        "所有层、所有头,共用一个色标:竖条纹表示头集中看某一个词元(常是 [CLS]/[SEP] 或首个"
        "词元),对角线表示看相邻词元。点击缩略图(或在下方选择)即可打开该头。",
    ),
    "ex_lines": (
        "BertViz-style: a line from each query (left) to the keys it attends (right), "
        "thicker and darker for larger weights; several heads in distinct colours.",
        "BertViz 风格:从每个查询(左)连到它关注的键(右),权重越大线越粗越深;多个头用不同"
        "颜色。",
    ),
    "ex_qk": (
        "Why this head looks where it does: the scores q·k/√d before softmax, the weights "
        "after, and the dimensions d whose products q_d·k_d contribute most to the top keys.",
        "这个头为什么这样看:softmax 之前的分数 q·k/√d、之后的权重,以及对得分最高的键贡献"
        "最大的维度 d 上的乘积 q_d·k_d。",
    ),
    "ex_metrics": (
        "Entropy: how spread out (0 = one key). Distance: how far it looks. Previous-token, "
        "first-token (\"sink\") and self share: how much weight goes there. Click a column "
        "header to sort.",
        "熵:注意力有多分散(0 = 只看一个键)。距离:看多远。前一个词元、首个词元(“汇聚点”)和"
        "自身的占比:权重有多少落在那里。点击列标题可排序。",
    ),
    "ex_agg": (
        "Mean over heads: the layer's average map. Rollout (Abnar & Zuidema, 2020): "
        "0.5·A + 0.5·I multiplied through the layers up to this one, a rough estimate of "
        "how much each input token flows into each position.",
        "头平均:该层的平均注意力图。注意力展开(Abnar & Zuidema, 2020):把 0.5·A + 0.5·I "
        "从第一层连乘到当前层,粗略估计每个输入词元流入每个位置的程度。",
    ),
    "ex_ablation": (
        "Switch heads off (their output set to zero) and compare the model's output with "
        "the intact model, and how the attention of every layer changes.",
        "关闭若干头(把它们的输出置零),比较模型输出与完整模型的差别,以及各层注意力的变化。",
    ),
    "ex_cross": (
        "Cross-attention: each decoder (target) token, as a query, reads the encoder's "
        "source tokens. For a translation or date model it shows an alignment.",
        "交叉注意力:每个解码器(目标)词元作为查询,读取编码器的源词元。对翻译或日期模型,"
        "它显示出一种对齐。",
    ),
    "ex_steps": (
        "Greedy generation, one token at a time: at step i the decoder's query is token i; "
        "it attends to the decoder tokens 0..i (masked self-attention) and to every source "
        "token (cross-attention), and its output is token i+1. The KV cache holds K and V "
        "of i+1 positions per decoder layer.",
        "贪心生成,一次一个词元:第 i 步解码器的查询是第 i 个词元;它关注解码器的 0..i 个词元"
        "(掩码自注意力)和所有源词元(交叉注意力),输出第 i+1 个词元。KV 缓存为每个解码器层"
        "保存 i+1 个位置的 K 和 V。",
    ),
    "long_view": ("View", "视图"),
    "summarising": (
        "Reading every layer once for the all-layer views (long input: this takes a while)…",
        "正在为全层视图逐层读取一次(长输入,需要一些时间)…",
    ),
    "v_full": ("full resolution", "完整分辨率"),
    "v_overview": ("overview in blocks", "分块概览"),
    "reduce": ("Each block shows its", "每个分块显示"),
    "r_max": ("max (keeps single strong cells)", "最大值(保留单个强单元)"),
    "r_mean": ("mean (each block's average)", "平均值(分块的平均)"),
    "log_scale": ("Log colour scale", "对数色标"),
    "log_help": (
        "Colour by log10 of the weight, from 10⁻⁴ of the largest (on by default for long "
        "inputs: most of a long map's weights are near 1/T). Weak structure far from the "
        "diagonal shows; cells at exactly 0 (masked) are grey. Off: a linear scale from 0.",
        "按权重的 log10 着色(从最大值的 10⁻⁴ 起;长输入默认开启:长图中多数权重接近 1/T)。"
        "远离对角线的弱结构也能看到;恰好为 0 的单元(被掩码)显示为灰色。关闭:从 0 开始的线性色标。",
    ),
    "image_caption": (
        "{tq} × {tk} cells at one pixel each: drag to zoom, double-click to reset. Hover shows "
        "the query token, the key token and the exact weight.",
        "{tq} × {tk} 个单元,每格一个像素:拖动放大,双击复原。悬停显示查询词元、键词元和精确权重。",
    ),
    "image_caption_big": (
        "{tq} × {tk} cells at one pixel each: drag to zoom, double-click to reset. Hover shows "
        "the two tokens; a map this large is too big to send its exact weights, so read them "
        "in the zoom window.",
        "{tq} × {tk} 个单元,每格一个像素:拖动放大,双击复原。悬停显示两个词元;这么大的图无法"
        "发送精确权重,请在缩放窗口中读取。",
    ),
    "model_long": (
        "Each thumbnail shows {n} tokens in blocks of {b}: a block's colour is its largest weight, "
        "so a single strong cell (a first-token sink, a diagonal) stays visible. Click one to open "
        "that head at full resolution.",
        "每个缩略图以 {b} 个词元为一块显示 {n} 个词元:块的颜色是其中最大的权重,因此单个强单元"
        "(首词元汇聚、对角线)仍然可见。点击缩略图可在完整分辨率下打开该头。",
    ),
    "rollout_blocks": (
        "Approximate: past 1,024 tokens, rollout runs on {n} × {n} blocks of {b} tokens. Each "
        "layer's head-mean map is reduced to the attention the block's average query pays to "
        "each block of keys, which keeps every row's sum at 1. It is exact only where a map is "
        "constant within blocks.",
        "近似值:超过 1,024 个词元时,注意力展开在 {n} × {n} 个分块(每块 {b} 个词元)上计算。每层"
        "的头平均图被化简为块内平均查询对每个键块的注意力(每行之和仍为 1);只有当图在块内为常数时"
        "才是精确的。",
    ),
    "rd_query": ("query", "查询"),
    "rd_key": ("key", "键"),
    "rd_weight": ("weight", "权重"),
    "rd_no_exact": ("(exact weight: zoom window)", "(精确权重:见缩放窗口)"),
    "rd_loading": ("(exact weights arriving…)", "(精确权重传输中…)"),
    "v_topk": ("top-k per query", "每个查询的 top-k"),
    "v_window": ("zoom window", "缩放窗口"),
    "k": ("k (keys per query)", "k(每个查询保留的键数)"),
    "q_window": ("Query positions", "查询位置"),
    "k_window": ("Key positions", "键位置"),
    "open": ("Open head", "打开这个头"),
    "open_btn": ("Open", "打开"),
    "heads": ("Heads", "头"),
    "query": ("Query token", "查询词元"),
    "all_queries": ("all queries", "所有查询"),
    "min_weight": ("Hide lines below weight", "隐藏权重低于此值的连线"),
    "lines_half": ("Window: keys either side of the query", "窗口:查询两侧各显示的键数"),
    "lines_k": ("Strongest keys outside the window", "窗口外权重最大的键数"),
    "qk_k": ("Strongest keys shown", "显示权重最大的键数"),
    "qk_half": ("Window: keys either side of the query", "窗口:查询两侧各显示的键数"),
    "ex_lines_long": (
        "Long input: one query at a time. Lines go to the keys in a window around the query "
        "and to its strongest keys outside it (bold, with their position); grey rows count "
        "the keys left out between them. The subtitle says how much of each head's weight "
        "the shown keys hold.",
        "长输入:一次只看一个查询。连线通向查询周围窗口内的键,以及窗口外它权重最大的键(加粗并"
        "标出位置);灰色行给出其间略去的键数。副标题说明所显示的键占每个头权重的多少。",
    ),
    "ex_qk_long": (
        "Long input: the top line is the query's whole row (every key's weight by position, "
        "the shown keys marked); the bars are a selection, its strongest keys and a window "
        "around it by position, with the keys left out counted between them. The weights "
        "are the model's softmax over every key, so the bars need not sum to 1.",
        "长输入:最上面一行是该查询的整行(每个键的权重随位置变化,标出所显示的键);柱状图只是"
        "其中一部分:权重最大的键和查询周围的窗口,按位置排列,其间注明略去的键数。权重是模型对"
        "全部键做的 softmax,所以这些柱之和不一定为 1。",
    ),
    "metric": ("Metric", "指标"),
    "mean_heads": ("Mean over heads", "头平均"),
    "rollout": ("Attention rollout through layer {l}", "到第 {l} 层的注意力展开"),
    "no_rollout_cross": (
        "Rollout needs self-attention (square maps): pick an encoder or decoder "
        "self-attention block.",
        "注意力展开需要自注意力(方阵):请选择编码器或解码器的自注意力模块。",
    ),
    "heads_off": ("Heads to switch off", "要关闭的头"),
    "pick_heads": ("Pick at least one head to switch off.", "请至少选择一个要关闭的头。"),
    "cosine": ("Embedding cosine to the intact model", "与完整模型的句向量余弦相似度"),
    "before": ("Intact", "完整模型"),
    "after": ("Heads off", "关闭头之后"),
    "changed": ("Mean |Δ weight| per head, {kind}", "每个头的平均 |Δ 权重|,{kind}"),
    "ablate_below": ("{block}'s map does not change: every head switched off is in this layer "
                     "or above, and a head switched off changes what its layer writes, not "
                     "where that layer looks. Choose a later layer to see how the maps moved.",
                     "{block} 的注意力图不会改变:所有被关闭的头都在这一层或更高层,关闭一个头"
                     "改变的是该层写入的内容,而不是该层关注的位置。选择更靠后的层,"
                     "查看注意力图如何变化。"),
    "decoded": ("Greedy decode (up to {n} tokens)", "贪心解码(最多 {n} 个词元)"),
    "step": ("Step", "步骤"),
    "step_info": ("step {i}: query token → next token", "第 {i} 步:查询词元 → 下一个词元"),
    "kv_bytes": (
        "KV cache after this step: {b:,} bytes = {per:,} bytes per position × {n} position(s)",
        "此步之后的 KV 缓存:{b:,} 字节 = 每个位置 {per:,} 字节 × {n} 个位置",
    ),
    "kv_formula": (
        "per token: 2 (K and V) × {layers} decoder layers × {kv} KV heads × {d} dims × 4 bytes",
        "每个词元:2(K 和 V)× {layers} 个解码器层 × {kv} 个 KV 头 × {d} 维 × 4 字节",
    ),
    "decoding": ("Decoding…", "正在解码…"),
    "ablating": ("Running the model with {heads} switched off", "关闭 {heads} 后重新运行模型"),
    "ablating_many": ("Running the model with {n} heads switched off ({heads})",
                      "关闭 {n} 个头后重新运行模型（{heads}）"),
    "measuring_kv": ("Decoding {n} steps to read the KV cache…", "解码 {n} 步以读取 KV 缓存…"),
    "measured_first": (
        "Crosses: cache.bytes_used read during a greedy decode of the first {n} steps.",
        "叉号:贪心解码前 {n} 步时读取的 cache.bytes_used。",
    ),
    "all_heads_cross": ("All heads of this cross-attention layer", "该交叉注意力层的所有头"),
    "no_cross": ("This model has no cross-attention.", "该模型没有交叉注意力。"),
    "bad_input": ("Cannot show this input: {msg}", "无法显示此输入:{msg}"),
    # long texts and progress (issue 17)
    "text_help": (
        "Type or paste a text of any length. The token count below and the views follow it "
        "on Ctrl+Enter or when you click outside the box (not at every keystroke).",
        "可输入或粘贴任意长度的文本。按 Ctrl+Enter 或点击框外后,下方的词元计数和各视图才会更新"
        "(不是每次按键都更新)。",
    ),
    "token_count": ("{n:,} tokens · {model} reads up to {max:,}",
                    "{n:,} 个词元 · {model} 最多读取 {max:,} 个"),
    "token_count_trained": (
        " (trained on {trained:,} positions; maps grow with the square of the length, so the "
        "app records fewer)",
        "(训练时有 {trained:,} 个位置;注意力图随长度的平方增长,所以本应用记录得更少)",
    ),
    "over_limit_at": (
        "Over the limit: {model} reads the first {kept:,} of these {n:,} tokens; the last "
        "{cut:,}, from character {at:,} of the text on, are cut.",
        "超出上限:{model} 只读取这 {n:,} 个词元中的前 {kept:,} 个;从文本第 {at:,} 个字符起的"
        "最后 {cut:,} 个词元将被截去。",
    ),
    "over_limit": (
        "Over the limit: {model} reads the first {kept:,} of these {n:,} tokens; the last "
        "{cut:,} are cut.",
        "超出上限:{model} 只读取这 {n:,} 个词元中的前 {kept:,} 个;最后 {cut:,} 个词元将被截去。",
    ),
    "computing": ("Computing attention for {n:,} tokens", "正在计算 {n:,} 个词元的注意力"),
    "computing_upto": ("Computing attention for {n:,} tokens up to layer {layer}",
                       "正在计算 {n:,} 个词元直到第 {layer} 层的注意力"),
    "computing_generate": ("Generating {g} tokens, then computing attention for {n:,} tokens",
                           "先生成 {g} 个词元,再计算 {n:,} 个词元的注意力"),
    "computing_next": ("Computing the next-token probabilities for {n:,} tokens (every layer, "
                       "no maps kept)",
                       "正在计算 {n:,} 个词元的下一个词元概率(经过所有层,不保留注意力图)"),
    "summary_computing": ("Reading every layer of {n:,} tokens once for the all-layer views",
                          "正在为全层视图逐层读取一次 {n:,} 个词元"),
}

KIND_NAMES = {
    "encoder.self": ("encoder self", "编码器自注意力"),
    "decoder.self": ("decoder self (masked)", "解码器自注意力(掩码)"),
    "decoder.cross": ("cross (decoder → encoder)", "交叉(解码器 → 编码器)"),
}


# ----------------------------------------------------------------------------- Contributions
# The Contributions tab's text (app_pages/attention/contributions.py), kept apart from the
# other tabs' keys. Each explanation: what the map means, then what it does not.
CONTRIBUTIONS_TEXT = {
    "ex_weights": (
        "**Weights** say where the head looks: each row is the query's softmax over the keys "
        "and sums to 1. They do not say what is moved: a key whose value vector is near zero "
        "can take most of the weight and still change nothing (attention is not explanation).",
        "**权重**表示这个头在看哪里:每一行是该查询在各个键上的 softmax,和为 1。它不表示搬运了"
        "什么:一个值向量接近零的键可以拿到大部分权重,却什么也不改变(注意力不等于解释)。",
    ),
    "ex_norm": (
        "**Norm map** α·‖W_O v‖ (Kobayashi et al., 2020): the weight times the size of what the "
        "head carries from that key, so it shows how much each key moves into the query. It "
        "says how much is moved, not whether it matters downstream: later layers may ignore "
        "or cancel it.",
        "**范数图** α·‖W_O v‖(Kobayashi 等,2020):权重乘以这个头从该键搬运的向量的大小,"
        "表示每个键向查询搬运了多少。它说明搬运了多少,而不说明这些内容对后续是否重要:后面的层"
        "可能忽略或抵消它。",
    ),
    "ex_flow": (
        "**Flow map** (Ferrando & Voita, 2024): each key's share of the whole layer's update "
        "at the query, all heads together, with the residual stream's share as its own column; "
        "rows sum to 1. It is a proximity measure (how close each part is to the sum, in L1 "
        "distance), not the effect of removing that token.",
        "**流向图**(Ferrando & Voita,2024):在该查询处,每个键在整层(所有头合起来)更新中"
        "的份额,残差流的份额单独成一列;每行之和为 1。它是一种接近度度量(各部分与总和在 L1 "
        "距离上有多接近),并不是移除该词元后的效果。",
    ),
    "ex_across": (
        "**Flow across layers** multiplies the flow maps of layers 0..{l} through the residual, "
        "giving the share with which each input token reaches the chosen position. Like "
        "rollout it is an estimate built from proximity shares (the MLPs are taken to keep "
        "each position's stream in place), not a measured attribution.",
        "**跨层流向**把第 0..{l} 层的流向图经残差连乘起来,得到每个输入词元到达所选位置的份额。"
        "与注意力展开一样,它是由接近度份额构成的估计(假定 MLP 让每个位置的流留在原位),"
        "而不是测得的归因。",
    ),
    "ex_lens": (
        "**Logit lens**: the model's final norm and unembedding applied to the residual stream "
        "after each layer, at the chosen position: what the model would predict if it stopped "
        "there. Early layers were never trained to be read this way, so their tokens are a "
        "rough view, not what the model believes.",
        "**Logit lens**:在所选位置,把模型最后的归一化层和反嵌入应用到每一层之后的残差流上:"
        "如果模型在那一层停下会预测什么。前面的层从未被训练成可以这样读取,所以它们的词元只是"
        "粗略的视角,不是模型的“想法”。",
    ),
    "p_weight": ("weight", "权重"),
    "p_norm": ("norm ‖αWv‖", "范数 ‖αWv‖"),
    "p_flow": ("flow share", "流向份额"),
    "p_residual": ("residual", "残差"),
    "computing": ("Computing norm and flow maps for {block}…",
                  "正在计算 {block} 的范数图和流向图…"),
    "position": ("Output token (query position)", "输出词元(查询位置)"),
    "across": ("Flow across layers 0..{l} into position {i}", "第 0..{l} 层流入位置 {i} 的流向"),
    "across_computing": ("Recording contributions of layers 0..{l}…",
                         "正在记录第 0..{l} 层的贡献…"),
    "no_across_cross": (
        "Flow across layers composes one stack's self-attention: pick an encoder self-attention "
        "block (an encoder-decoder's decoder also reads the source through cross-attention).",
        "跨层流向组合的是同一栈的自注意力:请选择编码器自注意力模块(编码器-解码器的解码器还通过"
        "交叉注意力读取源序列)。",
    ),
    "no_across_long": (
        "Flow across layers is computed for inputs of up to {n} tokens.",
        "跨层流向只对不超过 {n} 个词元的输入计算。",
    ),
    "lens": ("Logit lens at position {i}", "位置 {i} 的 logit lens"),
    "lens_computing": ("Reading every layer's prediction…", "正在读取每一层的预测…"),
    "no_lens": (
        "The logit lens reads next-token predictions, which only decoder models make: {name} "
        "is an {kind}.",
        "logit lens 读取的是下一个词元的预测,只有解码器模型才有:{name} 是{kind}模型。",
    ),
    "kind_encoder": ("encoder", "编码器"),
    "kind_encoder-decoder": ("encoder-decoder", "编码器-解码器"),
}

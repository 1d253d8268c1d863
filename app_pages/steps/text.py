"""Interface text of the Step by step page, English and 中文: {key: (en, zh)}."""

STEPS_TEXT = {
    "title": ("Step by step: self-attention by hand", "逐步计算:手算自注意力"),
    "intro": (
        "The worked example of the seed tutorial (§2): three tokens with d_model = 4, "
        "projected to d = 3. Edit any cell of X, W_Q, W_K or W_V and every step below is "
        "recomputed. The seed's example is **not** scaled by √d_k; switch scaling on to see "
        "what the Transformer paper does.",
        "来自种子教程(第二节)的示例:3 个词元,d_model = 4,投影到 d = 3。修改 X、W_Q、W_K、"
        "W_V 的任意单元格,下面每一步都会重新计算。种子教程的例子**没有**除以 √d_k;打开缩放即可"
        "看到 Transformer 论文的做法。",
    ),
    "scale": ("Scale the scores by 1/√d_k", "分数除以 √d_k(缩放)"),
    "reset": ("Restore the seed's numbers", "恢复种子教程的数值"),
    "s1": ("1 · Inputs and projection matrices (editable)", "1 · 输入与投影矩阵(可编辑)"),
    "s1_help": (
        "Rows of X are the three input vectors (word embeddings). W_Q, W_K, W_V map d_model = 4 "
        "to d = 3. In a trained model they are learned; here they are the seed's small integers.",
        "X 的每一行是一个输入向量(词嵌入)。W_Q、W_K、W_V 把 d_model = 4 映射到 d = 3。"
        "训练好的模型中它们是学出来的;这里用的是种子教程的小整数。",
    ),
    "s2": ("2 · Queries, keys and values", "2 · 查询、键和值"),
    "s2_help": (
        "Each token's query, key and value are its input row times W_Q, W_K and W_V.",
        "每个词元的查询、键、值向量 = 它的输入行分别乘以 W_Q、W_K、W_V。",
    ),
    "s3": ("3 · Attention scores QKᵀ", "3 · 注意力分数 QKᵀ"),
    "s3_help": (
        "Row i, column j is q_i · k_j: how well query i matches key j.",
        "第 i 行第 j 列是 q_i · k_j:查询 i 与键 j 的匹配程度。",
    ),
    "scaled": ("÷ √d_k = ÷ √{d} ≈ ÷ {root}", "÷ √d_k = ÷ √{d} ≈ ÷ {root}"),
    "unscaled_note": (
        "Unscaled, as in the seed (the paper divides by √d_k so that large d does not push "
        "softmax into near one-hot rows).",
        "与种子教程一样未缩放(论文除以 √d_k,以免维度大时 softmax 变得接近独热)。",
    ),
    "s4": ("4 · Softmax: attention weights", "4 · Softmax:注意力权重"),
    "s4_help": (
        "Each row is exponentiated and divided by its sum, so it is positive and sums to 1. "
        "These are the exact weights (the seed prints them too, before rounding).",
        "每一行取指数再除以该行之和,因此都为正且和为 1。这是精确的权重(种子教程在取整之前"
        "也打印了它们)。",
    ),
    "s5": ("5 · Weighted values and outputs", "5 · 加权值与输出"),
    "s5_help": (
        "Output i = Σ_j weight(i, j) · v_j. Pick a query to see its weighted value vectors and "
        "their sum.",
        "输出 i = Σ_j 权重(i, j) · v_j。选一个查询,看它的各个加权值向量及其和。",
    ),
    "query": ("Query", "查询"),
    "weight": ("weight", "权重"),
    "sum_row": ("sum = output", "求和 = 输出"),
    "outputs": ("Outputs (exact)", "输出(精确)"),
    "s6": ("6 · The seed's rounded softmax", "6 · 种子教程取整后的 softmax"),
    "s6_help": (
        "The seed replaces the softmax “for readability” by a hand-rounded matrix before the "
        "weighted sums, so its weighted values and outputs are not the exact ones.",
        "种子教程“为了方便阅读”在加权求和之前把 softmax 换成了手工取整的矩阵,因此它的加权值和"
        "输出并不是精确值。",
    ),
    "seed_weights": ("Seed's rounded weights", "种子教程取整后的权重"),
    "exact_weights": ("Exact weights", "精确权重"),
    "seed_weighted": ("Seed's weighted values for {q}", "种子教程中 {q} 的加权值"),
    "seed_outputs": ("Seed's outputs (rounded path)", "种子教程的输出(取整路径)"),
    "difference": ("Difference: seed − exact", "差值:种子 − 精确"),
    "diff_sentence": (
        "For input 1 the seed's output is [{seed}], the exact one is [{exact}]. The largest "
        "difference over all outputs is {maxdiff} ({where}).",
        "对于输入 1,种子教程的输出是 [{seed}],精确值是 [{exact}]。所有输出中最大的差值是 "
        "{maxdiff}({where})。",
    ),
    "not_seed": (
        "You changed the matrices or turned scaling on: the seed's rounded weights belong to "
        "its own inputs, unscaled. Restore the seed's numbers and switch scaling off to "
        "compare the two paths.",
        "你修改了矩阵或打开了缩放:种子教程的取整权重只对应它自己的输入且未缩放。恢复种子的数值"
        "并关闭缩放即可比较两条路径。",
    ),
    "compare_title": ("Outputs: exact vs the seed's rounded path", "输出:精确值与种子取整路径"),
    "s7": ("7 · Multi-head attention", "7 · 多头注意力"),
    "s7_help": (
        "Two heads of d = 3. Head 1 uses the matrices above; head 2 its own (editable below). "
        "Implementations project once with [W_Q¹ | W_Q²] (6 columns) and split the result "
        "into one block of 3 columns per head; each head attends on its own; the head outputs "
        "are concatenated and multiplied by W^O (6 × 4) to get back to d_model = 4.",
        "两个头,每头 d = 3。头 1 用上面的矩阵;头 2 有自己的矩阵(可在下方编辑)。实现中先用 "
        "[W_Q¹ | W_Q²](6 列)一次投影,再把结果按每头 3 列切开;每个头各自计算注意力;"
        "各头输出拼接后乘以 W^O(6 × 4),回到 d_model = 4。",
    ),
    "head2_edit": ("Head 2's matrices and W^O (editable)", "头 2 的矩阵和 W^O(可编辑)"),
    "projected": ("Projected once: X · [W¹ | W²]", "一次投影:X · [W¹ | W²]"),
    "split": ("Split into heads", "切分到各头"),
    "per_head": ("Per-head attention weights", "各头的注意力权重"),
    "head_out": ("Head {h} output", "头 {h} 的输出"),
    "concat": ("Concatenation [head 1 | head 2]", "拼接 [头 1 | 头 2]"),
    "final": ("Output = concat · W^O", "输出 = 拼接 · W^O"),
    "bad_cell": ("Cannot compute: {msg}", "无法计算:{msg}"),
    "refused": (
        "{matrix}, row {row}, column {col}: “{text}” is not a number, so the cell keeps {old}. "
        "Type a number such as 0.5 or -2.",
        "{matrix} 第 {row} 行、{col} 列:“{text}”不是数字,单元格保留原值 {old}。"
        "请输入数字,例如 0.5 或 -2。",
    ),
    "input": ("input {i}", "输入 {i}"),
    "head": ("head {h}", "头 {h}"),
    "scores_title": ("scores", "分数"),
    "weights_title": ("softmax weights", "softmax 权重"),
    "output_sum": ("output = sum", "输出 = 求和"),
    "exact": ("exact", "精确"),
    "seed_rounded": ("seed (rounded weights)", "种子(取整权重)"),
    "sum_title": ("{q}: output as a sum of weighted values", "{q}:输出 = 加权值之和"),
}

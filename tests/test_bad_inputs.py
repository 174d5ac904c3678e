"""The bad-input corpus: every awkward input a user is known to try, run through the CLI as they run it.

Each case is one row: the files it makes, the command, the exit code and words the one-line message must
hold. Every case must fail before any work, print no traceback, write nothing and leave an existing
output untouched. Cases that recover instead (a warning, a merge) are tested after the table.
"""

from __future__ import annotations

import bz2
import gzip
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bertfit.cli import main
from conftest import sentiment_rows, write_csv

GOOD = "\n".join(f"{t},{label}" for t, label in sentiment_rows(40))


def _good(tmp: Path, name: str = "data.csv") -> Path:
    return write_csv(tmp / name, sentiment_rows(40))


def _write(tmp: Path, name: str, content: str | bytes) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


@dataclass
class Case:
    name: str
    files: dict[str, str | bytes]  # relative path -> content; "{good}" is a small valid training CSV
    argv: list[str]  # placeholders: {tmp}, {tiny}, {model} (a trained folder), {gpt2}, {t5}
    code: int
    words: list[str] = field(default_factory=list)


TRAIN = ["train", "--model", "{tiny}", "--output", "{tmp}/out", "--epochs", "1", "--no-progress"]
HEADERLESS = "\n".join(f"{t},{label}" for t, label in sentiment_rows(40))

CASES = [
    # -- the data files -------------------------------------------------------------------------
    Case(
        "header repeats a name",
        {"d.csv": "text,label,text\n" + "\n".join(f"{r},x" for r in GOOD.splitlines())},
        [*TRAIN, "--train", "{tmp}/d.csv"],
        3,
        ["'text'", "more than once"],
    ),
    Case("header only", {"d.csv": "text,label\n"}, [*TRAIN, "--train", "{tmp}/d.csv"], 3, ["no rows", "header"]),
    Case("0-byte training file", {"d.csv": ""}, [*TRAIN, "--train", "{tmp}/d.csv"], 3, ["empty"]),
    Case("blank training file", {"d.csv": "\n\n  \n"}, [*TRAIN, "--train", "{tmp}/d.csv"], 3, ["empty"]),
    Case(
        "header-only validation file",
        {"d.csv": "text,label\n" + GOOD, "v.csv": "text,label\n"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--validation", "{tmp}/v.csv"],
        3,
        ["v.csv", "no rows"],
    ),
    Case(
        "text and label the same column",
        {"d.csv": "text,label\n" + GOOD},
        [*TRAIN, "--train", "{tmp}/d.csv", "--text-column", "text", "--label-column", "text"],
        3,
        ["'text'", "both the text and label"],
    ),
    Case(
        "an .xls workbook",
        {"d.xls": b"\xd0\xcf\x11\xe0junk"},
        [*TRAIN, "--train", "{tmp}/d.xls"],
        3,
        ["save it as CSV"],
    ),
    Case("a .numbers spreadsheet", {"d.numbers": b"PK"}, [*TRAIN, "--train", "{tmp}/d.numbers"], 3, ["CSV"]),
    Case("unknown file type", {"d.bin": b"\x00\x01"}, [*TRAIN, "--train", "{tmp}/d.bin"], 3, ["unknown file type"]),
    Case("a zip of two files", {}, [*TRAIN, "--train", "{tmp}/two.csv.zip"], 3, ["2 files"]),
    Case(
        "a corrupt .gz",
        {"d.csv.gz": b"\x1f\x8bnot really gzip"},
        [*TRAIN, "--train", "{tmp}/d.csv.gz"],
        3,
        ["d.csv.gz"],
    ),
    Case(
        "not UTF-8",
        {"d.csv": b"text,label\n" + b"caf\xe9 au lait,pos\n" + GOOD.encode()},
        [*TRAIN, "--train", "{tmp}/d.csv"],
        3,
        ["line 2", "UTF-8"],
    ),
    Case(
        "an unmatched quote with --quoting csv",
        {"d.tsv": "text\tlabel\n" + GOOD.replace(",", "\t") + '\n"oops\tpos\n'},
        [*TRAIN, "--train", "{tmp}/d.tsv", "--quoting", "csv"],
        3,
        ["--quoting none"],
    ),
    Case(
        "a bad JSONL line",
        {"d.jsonl": '{"text": "a", "label": "x"}\n{"text": "b", label}\n'},
        [*TRAIN, "--train", "{tmp}/d.jsonl"],
        3,
        ["line 2", "not valid JSON"],
    ),
    Case(
        "a JSONL line that is a list",
        {"d.jsonl": '["a", "x"]\n'},
        [*TRAIN, "--train", "{tmp}/d.jsonl"],
        3,
        ["line 1", "JSON object"],
    ),
    Case(
        "a missing label",
        {"d.csv": "text,label\n" + GOOD + "\nno label here,\n"},
        [*TRAIN, "--train", "{tmp}/d.csv"],
        3,
        ["row 41", "missing label"],
    ),
    Case(
        "an empty text",
        {"d.csv": "text,label\n" + GOOD + '\n"",pos\n'},
        [*TRAIN, "--train", "{tmp}/d.csv"],
        3,
        ["row 41", "empty or missing text"],
    ),
    Case(
        "a single class",
        {"d.csv": "text,label\n" + "\n".join(f"text {i},pos" for i in range(30))},
        [*TRAIN, "--train", "{tmp}/d.csv"],
        3,
        ["at least two"],
    ),
    Case(
        "regression labels that are words",
        {"d.csv": "text,label\n" + GOOD},
        [*TRAIN, "--train", "{tmp}/d.csv", "--task", "regression"],
        3,
        ["must be numbers"],
    ),
    Case(
        "no such text column",
        {"d.csv": "text,label\n" + GOOD},
        [*TRAIN, "--train", "{tmp}/d.csv", "--text-column", "body"],
        3,
        ["no text column 'body'", "columns found"],
    ),
    Case(
        "a folder as --train",
        {"data/d.csv": "{good}"},
        [*TRAIN, "--train", "{tmp}/data"],
        2,
        ["data: is a folder", "pass a file"],
    ),
    Case(
        "--label-columns naming one column",
        {"d.csv": "text,anger,joy\n" + "\n".join(f"text {i},{i % 2},{i % 3 % 2}" for i in range(30))},
        [*TRAIN, "--train", "{tmp}/d.csv", "--label-columns", "anger"],
        3,
        ["--label-columns 'anger' names 1 column", "--label-column"],
    ),
    Case(
        "--label-column and --label-columns together",
        {"d.csv": "text,anger,joy\n" + "\n".join(f"text {i},{i % 2},{i % 3 % 2}" for i in range(30))},
        [*TRAIN, "--train", "{tmp}/d.csv", "--label-column", "anger", "--label-columns", "anger,joy"],
        2,
        ["not both"],
    ),
    Case(
        "a 0/1 label column holding a 2",
        {"d.csv": "text,anger,joy\n" + "\n".join(f"text {i},{i % 2},{i % 3 % 2}" for i in range(30)) + "\nodd,0,2\n"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--label-columns", "anger:joy"],
        3,
        ["row 31", "column 'joy'", "0/1"],
    ),
    Case(
        "a missing label after a quote",
        {"d.csv": 'text,label\n"a, b",pos\n"three four,neg\nfive six"\n' + GOOD},
        [*TRAIN, "--train", "{tmp}/d.csv"],
        3,
        ["row 2", "missing label", "--quoting none"],
    ),
    # -- the options --------------------------------------------------------------------------
    Case("--epochs 0", {"d.csv": "{good}"}, [*TRAIN, "--train", "{tmp}/d.csv", "--epochs", "0"], 2, ["--epochs"]),
    Case(
        "negative --weight-decay",
        {"d.csv": "{good}"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--weight-decay", "-0.1"],
        2,
        ["--weight-decay"],
    ),
    Case(
        "negative --max-grad-norm",
        {"d.csv": "{good}"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--max-grad-norm", "-1"],
        2,
        ["--max-grad-norm"],
    ),
    Case(
        "--split not summing to 1",
        {"d.csv": "{good}"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--split", "0.5,0.1,0.1"],
        2,
        ["sum to 1"],
    ),
    Case(
        "--split with no training share",
        {"d.csv": "{good}"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--split", "0,0.5,0.5"],
        2,
        ["train > 0"],
    ),
    Case(
        "--split of two numbers",
        {"d.csv": "{good}"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--split", "0.8,0.2"],
        2,
        ["three numbers"],
    ),
    Case(
        "--sep of two characters", {"d.csv": "{good}"}, [*TRAIN, "--train", "{tmp}/d.csv", "--sep", ";;"], 2, ["--sep"]
    ),
    Case(
        "--quoting of an unknown kind",
        {"d.csv": "{good}"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--quoting", "smart"],
        2,
        ["--quoting"],
    ),
    Case("missing --train file", {}, [*TRAIN, "--train", "{tmp}/nope.csv"], 2, ["not found", "nope.csv"]),
    Case(
        "missing --label-map file",
        {"d.csv": "{good}"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--label-map", "{tmp}/m.json"],
        2,
        ["--label-map", "not found"],
    ),
    Case(
        "a --label-map that is not JSON",
        {"d.csv": "{good}", "m.json": "{spam: ham"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--label-map", "{tmp}/m.json"],
        3,
        ["m.json", "not valid JSON"],
    ),
    Case(
        "--dataset with --train",
        {"d.csv": "{good}"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--dataset", "cola"],
        2,
        ["--dataset cannot be combined"],
    ),
    Case(
        "--label-columns with --dataset",
        {},
        [*TRAIN, "--dataset", "goemotions", "--label-columns", "anger:joy"],
        2,
        ["--label-columns reads --train files"],
    ),
    Case(
        "an unknown --positive-label",
        {"d.csv": "{good}"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--positive-label", "spam"],
        2,
        ["'spam'", "pos", "neg"],
    ),
    Case(
        "--positive-label on three classes",
        {"d.csv": "text,label\n" + "\n".join(f"t {i},{'abc'[i % 3]}" for i in range(30))},
        [*TRAIN, "--train", "{tmp}/d.csv", "--positive-label", "a"],
        2,
        ["binary"],
    ),
    # -- the output ---------------------------------------------------------------------------
    Case(
        "--output under /proc",
        {"d.csv": "{good}"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--output", "/proc/bertfit/m"],
        5,
        ["cannot write --output", "/proc/bertfit/m"],
    ),
    Case(
        "--output under a file",
        {"d.csv": "{good}", "afile": "x"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--output", "{tmp}/afile/m"],
        5,
        ["is a file"],
    ),
    Case(
        "--output exists",
        {"d.csv": "{good}", "out/keep.txt": "mine"},
        [*TRAIN, "--train", "{tmp}/d.csv"],
        5,
        ["already exists", "--overwrite"],
    ),
    # -- the model ----------------------------------------------------------------------------
    Case(
        "a local --model that does not exist",
        {"d.csv": "{good}"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--model", "./models/none"],
        4,
        ["no such folder"],
    ),
    Case(
        "a --model name that is neither a folder nor a Hub model seen before",
        {"d.csv": "{good}"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--model", "mymodel"],
        4,
        ["mymodel", "no such folder", "offline"],
    ),
    Case(
        "a --model that is a file",
        {"d.csv": "{good}", "weights.bin": "x"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--model", "{tmp}/weights.bin"],
        4,
        ["a file, not a model folder"],
    ),
    Case(
        "a --model folder without config.json",
        {"d.csv": "{good}", "empty-model/README.md": "x"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--model", "{tmp}/empty-model"],
        4,
        ["no config.json"],
    ),
    Case(
        "a GPT-2 --model",
        {"d.csv": "{good}"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--model", "{gpt2}"],
        4,
        ["decoder", "gpt2"],
    ),
    Case(
        "a T5 --model",
        {"d.csv": "{good}"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--model", "{t5}"],
        4,
        ["encoder-decoder", "t5"],
    ),
    Case(
        "a --model without tokenizer files",
        {"d.csv": "{good}"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--model", "{tmp}/no-tokenizer"],
        4,
        ["no tokenizer files", "tokenizer.json"],
    ),
    Case(
        "a bertfit model folder as --model",
        {"d.csv": "{good}"},
        [*TRAIN, "--train", "{tmp}/d.csv", "--model", "{model}"],
        4,
        ["bertfit model folder"],
    ),
    # -- prediction ---------------------------------------------------------------------------
    Case(
        "predict: header-only input",
        {"in.csv": "text\n"},
        ["predict", "{model}", "--input", "{tmp}/in.csv", "--output", "{tmp}/o.csv"],
        3,
        ["no rows"],
    ),  # fmt: skip
    Case(
        "predict: 0-byte input",
        {"in.csv": ""},
        ["predict", "{model}", "--input", "{tmp}/in.csv", "--output", "{tmp}/o.csv"],
        3,
        ["empty"],
    ),  # fmt: skip
    Case(
        "predict: an output of unknown type",
        {"in.csv": "text\nhello\n"},
        ["predict", "{model}", "--input", "{tmp}/in.csv", "--output", "{tmp}/o.txt"],
        3,
        ["o.txt", ".csv"],
    ),
    Case(
        "predict: a blank line",
        {"in.csv": "text\nhello\n\nworld\n"},
        ["predict", "{model}", "--input", "{tmp}/in.csv", "--output", "{tmp}/o.csv"],
        3,
        ["row 2", "--skip-empty"],
    ),
    Case(
        "predict: output under a file",
        {"in.csv": "text\nhello\n", "afile": "x"},
        ["predict", "{model}", "--input", "{tmp}/in.csv", "--output", "{tmp}/afile/o.csv"],
        5,
        ["is a file"],
    ),
    Case(
        "predict: missing input",
        {},
        ["predict", "{model}", "--input", "{tmp}/in.csv", "--output", "{tmp}/o.csv"],
        3,
        ["not found"],
    ),
    Case(
        "predict: no such text column",
        {"in.csv": "body,id\nhello,1\nthere,2\n"},
        ["predict", "{model}", "--input", "{tmp}/in.csv", "--output", "{tmp}/o.csv", "--text-column", "text"],
        3,
        ["no text column 'text'"],
    ),
    Case(
        "predict: a model copy without tokenizer.json",
        {},
        ["predict", "{tmp}/copy", "--text", "WIN a free prize now"],
        4,
        ["tokenizer"],
    ),
    Case(
        "predict: not a model folder",
        {"plain/x.txt": "x"},
        ["predict", "{tmp}/plain", "--text", "hi"],
        4,
        ["not a bertfit model folder"],
    ),
    Case(
        "predict: --output is the --input",
        {"scores.csv": "text\nhello\n"},
        ["predict", "{model}", "--input", "{tmp}/scores.csv", "--output", "{tmp}/scores.csv"],
        5,
        ["scores.csv is the --input file", "choose another --output"],
    ),
    Case(
        "predict: --output is the --input, with --overwrite",
        {"scores.csv": "text\nhello\n"},
        ["predict", "{model}", "--input", "{tmp}/scores.csv", "--output", "{tmp}/x/../scores.csv", "--overwrite"],
        5,
        ["is the --input file"],
    ),
    Case(
        "predict: --output a hard link to the --input",
        {"scores.csv": "text\nhello\n"},
        ["predict", "{model}", "--input", "{tmp}/scores.csv", "--output", "{tmp}/link.csv", "--overwrite"],
        5,
        ["link.csv is the --input file"],
    ),
    Case(
        "predict: --output exists",
        {"in.csv": "text\nhello\n", "o.csv": "mine\n"},
        ["predict", "{model}", "--input", "{tmp}/in.csv", "--output", "{tmp}/o.csv"],
        5,
        ["o.csv already exists", "--overwrite"],
    ),
    Case(
        "embed: --output is the --input",
        {"in.jsonl": '{"text": "hello"}\n'},
        ["embed", "{model}", "--input", "{tmp}/in.jsonl", "--output", "{tmp}/in.jsonl", "--overwrite"],
        5,
        ["is the --input file"],
    ),
    Case(
        "embed: --output exists",
        {"in.csv": "text\nhello\n", "v.npy": "mine"},
        ["embed", "{model}", "--input", "{tmp}/in.csv", "--output", "{tmp}/v.npy"],
        5,
        ["v.npy already exists", "--overwrite"],
    ),
    Case(
        "predict: a shard output folder that holds files",
        {"in/a.csv": "text\nhello\n", "out/keep.txt": "mine"},
        ["predict", "{model}", "--input", "{tmp}/in", "--output", "{tmp}/out"],
        5,
        ["out: the output folder must be new or empty"],
    ),
    Case(
        "predict: shards written into their own folder",
        {"in/a.csv": "text\nhello\n"},
        ["predict", "{model}", "--input", "{tmp}/in", "--output", "{tmp}/in"],
        5,
        ["must be new or empty"],
    ),
    Case(
        "predict: two shards of one name",
        {"in/a/part.csv": "text\nhello\n", "in/b/part.csv": "text\nthere\n"},
        ["predict", "{model}", "--input", "{tmp}/in/*/part.csv", "--output", "{tmp}/out"],
        3,
        ["share the file name part.csv"],
    ),
    Case(
        "predict: an empty --text",
        {},
        ["predict", "{model}", "--text", "hello", "--text", "   "],
        3,
        ["--text[1]", "empty text"],
    ),
    Case(
        "predict: --text-pair for a single-text model",
        {},
        ["predict", "{model}", "--text", "hello", "--text-pair", "there"],
        2,
        ["trained on single texts", "drop --text-pair"],
    ),
    Case(
        "evaluate: --text-pair-column for a single-text model",
        {"e.csv": "text,other,label\nhello,there,pos\nbye,now,neg\n"},
        ["evaluate", "{model}", "--data", "{tmp}/e.csv", "--text-pair-column", "other"],
        2,
        ["trained on single texts", "--text-pair-column"],
    ),
    Case(
        "evaluate: header-only data",
        {"e.csv": "text,label\n"},
        ["evaluate", "{model}", "--data", "{tmp}/e.csv"],
        3,
        ["no rows"],
    ),
    Case(
        "evaluate: a folder as --data",
        {"e/e.csv": "text,label\nhello,pos\n"},
        ["evaluate", "{model}", "--data", "{tmp}/e"],
        3,
        ["is a folder", "pass a file"],
    ),
    Case("serve: a port out of range", {}, ["serve", "{model}", "--port", "99999"], 2, ["--port"]),
]


@pytest.fixture(scope="module")
def other_models(tmp_path_factory, default_tokenizer) -> dict[str, Path]:
    """Tiny GPT-2 and T5 folders: models bertfit must refuse as encoders."""
    from transformers import AutoModel, GPT2Config, T5Config

    folders = {}
    configs = {"gpt2": GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=default_tokenizer.vocab_size),
               "t5": T5Config(num_layers=1, d_model=32, d_ff=64, num_heads=2, d_kv=16,
                              vocab_size=default_tokenizer.vocab_size)}  # fmt: skip
    for name, config in configs.items():
        folder = tmp_path_factory.mktemp(name)
        AutoModel.from_config(config).save_pretrained(folder)
        default_tokenizer.save_pretrained(folder)
        folders[name] = folder
    return folders


def _files_under(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and "hf-home" not in p.parts}


def _prepare(case: Case, tmp: Path, tiny: Path, model: Path) -> None:
    for name, content in case.files.items():
        _write(tmp, name, str(_good(tmp, "good.csv").read_text()) if content == "{good}" else content)
    if case.name == "a zip of two files":
        with zipfile.ZipFile(tmp / "two.csv.zip", "w") as archive:
            archive.writestr("a.csv", "text,label\n" + GOOD)
            archive.writestr("b.csv", "text,label\n" + GOOD)
    if "no-tokenizer" in " ".join(case.argv):
        shutil.copytree(tiny, tmp / "no-tokenizer", ignore=shutil.ignore_patterns("tokenizer*", "vocab*", "special*"))
    if "{tmp}/copy" in case.argv:
        shutil.copytree(model, tmp / "copy", ignore=shutil.ignore_patterns("tokenizer.json"))
    if "{tmp}/link.csv" in case.argv:  # another name for the same file
        os.link(tmp / "scores.csv", tmp / "link.csv")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_in_one_line_before_any_work(case, tmp_path, tiny_bert, small_model_dir, other_models,
                                                          capsys):  # fmt: skip
    _prepare(case, tmp_path, tiny_bert, small_model_dir)
    places = {"{tmp}": str(tmp_path), "{tiny}": str(tiny_bert), "{model}": str(small_model_dir),
              "{gpt2}": str(other_models["gpt2"]), "{t5}": str(other_models["t5"])}  # fmt: skip
    argv = [_fill(arg, places) for arg in case.argv]
    before = _files_under(tmp_path)
    model_before = _files_under(small_model_dir)
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own checks (choices)
        code = stop.code
    err = capsys.readouterr().err
    assert code == case.code, err
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if line.startswith(("error:", "usage:", "bertfit"))][-1]
    for word in case.words:
        assert word in message, (word, message)
    assert _files_under(tmp_path) == before  # nothing written, nothing existing touched
    assert _files_under(small_model_dir) == model_before


def _fill(arg: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        arg = arg.replace(key, value)
    return arg


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40


# -- what is read, detected or merged instead of refused ---------------------------------------
@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.bz2", ".csv.zip", ".xlsx", ".semicolon.csv", ".pipe.csv"])
def test_compressed_excel_and_other_delimiters_are_read(tmp_path, suffix):
    import pandas as pd

    from bertfit.data.table import read_labelled_file

    rows = sentiment_rows(20)
    text = "text,label\n" + "\n".join(f"{t},{label}" for t, label in rows) + "\n"
    path = tmp_path / f"data{suffix}"
    if suffix == ".csv.gz":
        path.write_bytes(gzip.compress(text.encode()))
    elif suffix == ".csv.bz2":
        path.write_bytes(bz2.compress(text.encode()))
    elif suffix == ".csv.zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("data.csv", text)
    elif suffix == ".xlsx":
        pd.DataFrame(rows, columns=["text", "label"]).to_excel(path, index=False)
    else:
        sep = ";" if "semicolon" in suffix else "|"
        path.write_text(text.replace(",", sep))
    split = read_labelled_file(path)
    assert split.texts == [t for t, _ in rows] and split.labels == [label for _, label in rows]


def test_sep_and_quoting_options_read_what_detection_cannot(tmp_path):
    from bertfit.data.readers import ReadOptions
    from bertfit.data.table import read_labelled_file

    path = _write(tmp_path, "d.csv", "text#label\n" + "\n".join(f'say "{t}#{label}' for t, label in sentiment_rows(10)))
    split = read_labelled_file(path, options=ReadOptions(sep="#", quoting=3))
    assert split.texts[0].startswith('say "') and set(split.labels) == {"pos", "neg"}


def test_a_raw_tsv_with_an_unmatched_quote_is_read_with_quoting_off(tmp_path):
    from bertfit.data.table import read_labelled_file

    body = "\n".join(f"{t}\t{label}" for t, label in sentiment_rows(10))
    split = read_labelled_file(_write(tmp_path, "d.tsv", 'text\tlabel\n"unmatched quote\tpos\n' + body))
    assert split.texts[0] == '"unmatched quote' and len(split) == 11


def test_labels_written_two_ways_are_warned_about_and_merged_on_request(tmp_path):
    rows = [(t, {"pos": "spam", "neg": "ham"}[label]) for t, label in sentiment_rows(60)]
    rows += [(f"more words {i}", "Spam") for i in range(6)] + [(f"other words {i}", "1") for i in range(6)]
    data = write_csv(tmp_path / "d.csv", rows)
    label_map = _write(tmp_path, "map.json", json.dumps({"1": "spam"}))
    from bertfit.config import DataConfig
    from bertfit.data.load import load_data

    loaded = load_data(DataConfig(train=str(data), split="0.6,0.2,0.2"))
    assert set(loaded.labels.names) == {"1", "Spam", "ham", "spam"}
    assert any("differ only in case" in w and "'Spam' / 'spam'" in w for w in loaded.warnings)
    assert any("mix numbers (1) and words" in w for w in loaded.warnings)
    merged = load_data(DataConfig(train=str(data), split="0.6,0.2,0.2", label_map=str(label_map),
                                  lowercase_labels=True))  # fmt: skip
    assert merged.labels.names == ("ham", "spam")
    assert not any("differ only in case" in w or "mix numbers" in w for w in merged.warnings)


@pytest.mark.parametrize("split, kept", [("0.8,0.2,0", {"validation"}), ("1,0,0", set())])
def test_a_zero_split_share_means_no_such_split(tiny_bert, tmp_path, capsys, split, kept):
    data = write_csv(tmp_path / "d.csv", sentiment_rows(40))
    out = tmp_path / "m"
    args = ["train", "--train", str(data), "--split", split, "--model", str(tiny_bert), "--output", str(out),
            "--epochs", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert set(json.loads((out / "metrics.json").read_text())) == kept
    err = capsys.readouterr().err
    assert "no test data: nothing is scored on held-out data" in err
    assert ("no validation data" in err) == (not kept)


def test_predict_skip_empty_keeps_one_output_row_per_input_row(small_model_dir, tmp_path):
    import pandas as pd

    source = _write(tmp_path, "in.csv", "text,id\nhello there,1\n,2\nlovely day,3\n\n\n")
    out = tmp_path / "o.jsonl"
    assert main(["predict", str(small_model_dir), "--input", str(source), "--output", str(out), "--skip-empty"]) == 0
    rows = pd.read_json(out, lines=True)
    assert list(rows["id"]) == [1, 2, 3]
    assert rows["predicted_label"].isna().tolist() == [False, True, False]


def test_predictor_takes_any_iterable_and_names_a_missing_text(small_model_dir):
    import numpy as np
    import pandas as pd

    from bertfit import Predictor
    from bertfit.errors import DataError

    predictor = Predictor.load(small_model_dir)
    texts = ["a lovely day", "an awful day"]
    expected = predictor.predict_proba(texts)
    for given in (pd.Series(texts), np.array(texts), iter(texts), tuple(texts)):
        np.testing.assert_allclose(predictor.predict_proba(given), expected)
    with pytest.raises(DataError, match=r"texts\[1\] is missing"):
        predictor.predict(["fine", None])
    with pytest.raises(DataError, match=r"texts\[0\] is of type int"):
        predictor.predict([3])


def test_option_mistakes_are_answered_before_torch_loads(tmp_path):
    data = write_csv(tmp_path / "d.csv", sentiment_rows(10))
    call = f"main(['train', '--train', {str(data)!r}, '--epochs', '0'])"
    probe = (
        f"import sys; from bertfit.cli import main; code = {call}; assert 'torch' not in sys.modules; sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "--epochs must be at least 1" in done.stderr

"""Train/val/test splits (lungseg.splits): the stratified automatic split, finding and
checking splits.csv, selecting a split's samples, and a resumed run's own split."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from lungseg import datasets
from lungseg.datasets import discover
from lungseg.runconfig import TrainConfig
from lungseg.splits import (
    SPLITS,
    assign_splits,
    find_splits_file,
    make_splits,
    matched,
    read_splits,
    select,
    write_splits,
)
from lungseg.train import load_split_pairs

# ---------------------------------------------------------------- splits


def test_make_splits_deterministic_and_stratified(dataset_root):
    samples, _ = discover(dataset_root)
    assert len(samples) == 60
    a = make_splits(samples)
    b = make_splits(list(reversed(samples)))
    assert a == b  # independent of input order
    assert set(a) == {(s.dataset, s.id) for s in samples}
    assert set(a.values()) == {"train", "val", "test"}
    for ds in ("montgomery", "shenzhen", "jsrt"):
        for label in (0, 1):
            group = [s for s in samples if s.dataset == ds and s.label == label]
            assert len(group) == 10
            c = Counter(a[(s.dataset, s.id)] for s in group)
            assert c == {"train": 7, "val": 1, "test": 2}, (ds, label, c)
    other_salt = make_splits(samples, salt="other")
    assert other_salt != a  # the order comes from the salted hash
    assert Counter(other_salt.values()) == Counter(a.values())


def test_make_splits_larger_group_fractions(tmp_path):
    ids = [f"CHNCXR_{i:04d}_0" for i in range(1, 41)]
    samples = [datasets.Sample("shenzhen", i, tmp_path, [], 0) for i in ids]
    c = Counter(make_splits(samples).values())
    assert c == {"train": 28, "val": 4, "test": 8}


def test_assign_splits_writes_file_and_uses_root_file(dataset_root, tmp_path):
    samples, _ = discover(dataset_root)
    out = tmp_path / "run"
    out.mkdir()
    made = assign_splits(dataset_root, samples, out)
    assert made == make_splits(samples)
    with open(out / "splits.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 60 and set(rows[0]) == {"dataset", "id", "split"}
    assert {(r["dataset"], r["id"]): r["split"] for r in rows} == made

    # a splits.csv in the data root wins; samples missing from it get a deterministic split
    fixed = {(s.dataset, s.id): "test" for s in samples[:50]}
    write_splits(dataset_root / "splits.csv", fixed)
    used = assign_splits(dataset_root, samples, out)
    for k in fixed:
        assert used[k] == "test"
    rest = make_splits(samples[50:])
    for s in samples[50:]:
        assert used[(s.dataset, s.id)] == rest[(s.dataset, s.id)]
    assert read_splits(out / "splits.csv") == used

    assert assign_splits(dataset_root, samples) == used  # out_dir None: nothing written


def test_select_split_datasets_and_limit(dataset_root):
    samples, _ = discover(dataset_root)
    splits = make_splits(samples)
    train = select(samples, splits, "train")
    assert len(train) == 42
    assert all(splits[(s.dataset, s.id)] == "train" for s in train)
    only = select(samples, splits, "test", datasets=["jsrt"])
    assert len(only) == 4 and {s.dataset for s in only} == {"jsrt"}
    assert len(select(samples, splits, None)) == 60

    limited = select(samples, splits, "train", limit=3)
    assert len(limited) == 3
    assert {s.dataset for s in limited} == {"jsrt", "montgomery", "shenzhen"}
    limited = select(samples, splits, "train", limit=7)
    assert Counter(s.dataset for s in limited) == {"jsrt": 3, "montgomery": 2, "shenzhen": 2}
    assert select(samples, splits, "train", limit=7) == limited  # deterministic
    assert len(select(samples, splits, "val", limit=100)) == 6


# ---------------------------------------------------------------- review: splits file


def _write(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding)
    return path


def test_splits_csv_found_in_a_parent_folder(dataset_root, caplog):
    """--data ROOT/chest-xray-masks uses ROOT/splits.csv, not a new split (leakage)."""
    samples, _ = discover(dataset_root)
    fixed = {(s.dataset, s.id): "train" for s in samples}
    write_splits(dataset_root / "splits.csv", fixed)
    sub = dataset_root / "chest-xray-masks"
    sub_samples, _ = discover(sub)
    assert find_splits_file(sub) == find_splits_file(dataset_root) == dataset_root / "splits.csv"
    with caplog.at_level("INFO", logger="lungseg"):
        used = assign_splits(sub, sub_samples)
    assert set(used.values()) == {"train"}  # the official split, not a stratified one
    assert f"using split file {dataset_root / 'splits.csv'}" in caplog.text
    assert "NEW" not in caplog.text


def test_splits_csv_search_stops_three_folders_up(tmp_path):
    deep = tmp_path / "a" / "b" / "c" / "d"
    deep.mkdir(parents=True)
    _write(tmp_path / "splits.csv", "dataset,id,split\n")
    assert find_splits_file(deep) is None  # 4 levels up: too far
    assert find_splits_file(deep.parent) == tmp_path / "splits.csv"  # 3 levels up
    _write(deep.parent / "splits.csv", "dataset,id,split\n")
    assert find_splits_file(deep) == deep.parent / "splits.csv"  # the nearest wins


def test_new_split_is_a_warning_that_says_where_it_is_saved(dataset_root, tmp_path, caplog):
    samples, _ = discover(dataset_root)
    with caplog.at_level("INFO", logger="lungseg"):
        assign_splits(dataset_root, samples, tmp_path)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "NEW stratified split" in warnings[0]
    assert str(tmp_path / "splits.csv") in warnings[0]


def test_explicit_split_file_wins(dataset_root, tmp_path):
    samples, _ = discover(dataset_root)
    write_splits(dataset_root / "splits.csv", {(s.dataset, s.id): "train" for s in samples})
    run = tmp_path / "run.csv"
    write_splits(run, {(s.dataset, s.id): "test" for s in samples})
    assert set(assign_splits(dataset_root, samples, split_file=run).values()) == {"test"}


# ---------------------------------------------------------------- review: splits.csv checks


def test_read_splits_bom_case_aliases_and_extra_columns(tmp_path):
    text = "Dataset, ID ,split,note\r\nJSRT,JPCLN001,Test,x\r\njsrt,JPCLN002,validation,\r\n\r\n"
    path = _write(tmp_path / "s.csv", "\ufeff" + text)  # Excel's "CSV UTF-8" starts with a BOM
    assert read_splits(path) == {("jsrt", "JPCLN001"): "test", ("jsrt", "JPCLN002"): "val"}


@pytest.mark.parametrize(
    "text",
    ["jsrt,JPCLN001,train\n", "dataset;id;split\njsrt;JPCLN001;train\n", "dataset,id\n", ""],
)
def test_read_splits_wrong_header(tmp_path, text):
    path = _write(tmp_path / "s.csv", text)
    with pytest.raises(ValueError) as e:
        read_splits(path)
    assert str(path) in str(e.value) and "dataset,id,split" in str(e.value)


@pytest.mark.parametrize("second", ["test", "train"])
def test_read_splits_duplicate_ids_are_an_error(tmp_path, second):
    text = f"dataset,id,split\njsrt,JPCLN001,train\njsrt,JPCNN002,val\njsrt,JPCLN001,{second}\n"
    path = _write(tmp_path / "s.csv", text)
    with pytest.raises(ValueError) as e:
        read_splits(path)
    msg = str(e.value)
    assert str(path) in msg and "jsrt/JPCLN001" in msg and "JPCNN002" not in msg
    assert "1 ids" in msg and "more than once" in msg


def test_read_splits_unknown_split_names_listed(tmp_path):
    text = "dataset,id,split\njsrt,A,train\njsrt,B,dev\njsrt,C,holdout\njsrt,D,dev\njsrt,E,Test\n"
    path = _write(tmp_path / "s.csv", text)
    with pytest.raises(ValueError) as e:
        read_splits(path)
    msg = str(e.value)
    assert str(path) in msg and "'dev' (2 rows)" in msg and "'holdout' (1 rows)" in msg
    assert "'test'" not in msg and "train, val or test" in msg


def test_read_splits_short_row_and_not_utf8(tmp_path):
    path = _write(tmp_path / "s.csv", "dataset,id,split\njsrt,A,train\njsrt,B\n")
    with pytest.raises(ValueError, match="line 3"):
        read_splits(path)
    path = _write(tmp_path / "u.csv", "dataset,id,split\njsrt,A,train\n", encoding="utf-16")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_splits(path)


def test_ids_missing_from_the_data_are_a_warning(dataset_root, caplog):
    samples, _ = discover(dataset_root)
    fixed = {(s.dataset, s.id): "train" for s in samples}
    fixed.update({("jsrt", f"JPCLN9{i:02d}"): "test" for i in range(7)})
    write_splits(dataset_root / "splits.csv", fixed)
    with caplog.at_level("WARNING", logger="lungseg"):
        used = assign_splits(dataset_root, samples)
    assert used == fixed  # not an error: a subset of the data may be evaluated
    (msg,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert msg.startswith("7 ids in") and "jsrt/JPCLN900" in msg and "and 4 more" in msg


def test_ids_match_the_split_file_whatever_their_case(dataset_root):
    """Films renamed in another case (jpcln005.png) keep the split the file gives JPCLN005: a new
    split for them would move fixed test films into training."""
    samples, _ = discover(dataset_root)
    fixed = {(s.dataset, s.id.upper()): SPLITS[k % 3] for k, s in enumerate(samples)}
    write_splits(dataset_root / "splits.csv", fixed)
    for s in samples:
        s.id = s.id.lower()
    assert assign_splits(dataset_root, samples) == {
        (d, i.lower()): sp for (d, i), sp in fixed.items()
    }
    lowered = {(d, i.lower()): sp for (d, i), sp in fixed.items()}
    assert matched(fixed, samples) == lowered
    assert read_splits(dataset_root / "splits.csv", samples) == lowered  # the same, read
    # two films whose names differ only in case (a case-sensitive file system): each keeps its own
    one, two = samples[0], datasets.Sample(samples[0].dataset, samples[0].id.upper(), Path("x"), [])
    listed = {(one.dataset, one.id): "test", (two.dataset, two.id): "train"}
    assert matched(listed, [one, two]) == listed
    assert matched({(one.dataset, one.id): "test"}, [one, two]) == {(one.dataset, one.id): "test"}


# ---------------------------------------------------------------- review: small groups


@pytest.mark.parametrize(
    "n, expected",
    [(1, (1, 0, 0)), (2, (2, 0, 0)), (3, (1, 1, 1)), (4, (2, 1, 1)), (5, (3, 1, 1))]
    + [(6, (4, 1, 1)), (10, (7, 1, 2)), (15, (10, 2, 3)), (40, (28, 4, 8))]
    # round(.7n) train, round(.1n) val as always (n - round(.1n) - round(.2n) train differs)
    + [(8, (6, 1, 1)), (12, (8, 1, 3)), (18, (13, 2, 3)), (45, (31, 4, 10)), (58, (41, 6, 11))],
)
def test_make_splits_small_groups_get_val_and_test(tmp_path, n, expected):
    """Groups of 3-5 films get one val and one test film; larger groups keep the counts of the
    original rule (round(.7n) train, round(.1n) val, the rest test), so an existing split of
    the same films does not move."""
    samples = [datasets.Sample("jsrt", f"JPCLN{i:03d}", tmp_path, [], 1) for i in range(n)]
    a = make_splits(samples)
    c = Counter(a.values())
    assert (c["train"], c["val"], c["test"]) == expected
    assert make_splits(list(reversed(samples))) == a


def test_five_per_group_data_has_val_films_in_every_dataset(tmp_path, synth):
    """5 per group used to give 4/0/1 (round half to even) and no val films at all."""
    samples, _ = discover(synth.make_dataset_root(tmp_path, n_per_group=5))
    splits = make_splits(samples)
    val = select(samples, splits, "val")
    assert Counter(s.dataset for s in val) == {"jsrt": 2, "montgomery": 2, "shenzhen": 2}


# ---------------------------------------------------------------- review: --datasets names


def test_select_rejects_unknown_dataset_names(dataset_root):
    samples, _ = discover(dataset_root)
    splits = make_splits(samples)
    with pytest.raises(ValueError) as e:
        select(samples, splits, "train", datasets=["shenzen", "jsrt"])
    msg = str(e.value)
    assert "'shenzen'" in msg and "jsrt, montgomery, shenzhen" in msg and "'jsrt'" not in msg
    upper = select(samples, splits, "train", datasets=["Shenzhen"])  # case does not matter
    assert upper == select(samples, splits, "train", datasets=["shenzhen"]) and len(upper) == 14


# ---------------------------------------------------------------- a resumed run's split


def test_resume_trains_on_the_runs_own_split(tmp_path, synth, caplog):
    """--resume reads the run's splits.csv and leaves it as it is: a new split of the data
    (films added, another --data, other split rules) could move trained-on films into val.
    Films the run's split does not list were never part of the run and stay out."""
    root = synth.make_dataset_root(tmp_path / "data", n_per_group=5, jsrt=False)
    samples, _ = discover(root)
    run_split = {(s.dataset, s.id): ("val", "test", "train", "train")[i % 4]
                 for i, s in enumerate(samples[1:])}  # fmt: skip
    assert run_split != {k: v for k, v in make_splits(samples).items() if k in run_split}
    out = tmp_path / "run"
    out.mkdir()
    write_splits(out / "splits.csv", run_split)
    before = (out / "splits.csv").read_bytes()
    cfg = TrainConfig(data=str(root), out=str(out), encoder="resnet18", size=64)
    with caplog.at_level("WARNING", logger="lungseg"):
        pairs = load_split_pairs(cfg, out, resume=True)
    used = {(s.dataset, s.id): split for split, p in pairs.items() for s, _, _ in p}
    assert used == {k: v for k, v in run_split.items() if v != "test"}
    assert (out / "splits.csv").read_bytes() == before
    assert f"1 films under {root} are not in {out / 'splits.csv'}" in caplog.text
    load_split_pairs(cfg, out)  # a new run in the folder makes and writes its own split
    assert read_splits(out / "splits.csv") == make_splits(samples)


def test_a_trailing_digit_of_your_own_names_is_no_label(tmp_path):
    """`film_000`, `film_001`, `film_002`: one group of 3 films (one train, one val, one test),
    not three groups of one split by a label read from their numbers (all train: no val)."""
    from lungseg.datasets import Sample, label_of

    assert [label_of(n) for n in ("film_000", "film_001", "MCUCXR_0001_1", "CHNCXR_0003_0")] == [
        None, None, 1, 0,
    ]  # fmt: skip
    samples = [
        Sample("other", f"film_{k:03d}", tmp_path / f"{k}.png", [], label_of(f"film_{k:03d}"))
        for k in range(3)
    ]
    assert sorted(make_splits(samples).values()) == ["test", "train", "val"]


def test_a_data_set_shipped_split_into_train_and_test_folders_keeps_that_split(tmp_path):
    """train/images + train/masks and test/... (README: a group per folder): without a
    splits.csv, the folders are the split (the test folder's films were split 70/10/20 with the
    rest, some trained on), and a tenth of train/'s films validate when there is no val/."""
    from lungseg.datasets import Sample

    def films(group, n):
        return [Sample("other", f"{group}_{k}", tmp_path / group / "images" / f"{k}.png", [])
                for k in range(n)]  # fmt: skip

    samples = films("train", 10) + films("Test", 4) + films("site", 10)
    splits = assign_splits(tmp_path, samples)
    assert {splits[("other", f"Test_{k}")] for k in range(4)} == {"test"}
    train = Counter(splits[("other", f"train_{k}")] for k in range(10))
    assert train == {"train": 9, "val": 1}
    assert Counter(splits[("other", f"site_{k}")] for k in range(10)) == {
        "train": 7,
        "val": 1,
        "test": 2,
    }  # fmt: skip (films in no such folder: split as before)
    samples += films("validation", 2)
    splits = assign_splits(tmp_path, samples)
    assert Counter(splits[("other", f"train_{k}")] for k in range(10)) == {"train": 10}
    assert {splits[("other", f"validation_{k}")] for k in range(2)} == {"val"}
    write_splits(tmp_path / "splits.csv", {(s.dataset, s.id): "train" for s in samples})
    assert set(assign_splits(tmp_path, samples).values()) == {"train"}  # a splits.csv: it counts


def test_too_few_films_for_val_films_says_why(tmp_path, synth):
    """Two films of each TB label: groups of 2, so a new split gives no val film (the message
    sent the user to --data, --datasets and --limit only)."""
    root = synth.make_dataset_root(tmp_path / "data", n_per_group=2, jsrt=False)
    cfg = TrainConfig(data=str(root), out=str(tmp_path / "run"), encoder="resnet18", size=64)
    (tmp_path / "run").mkdir()
    with pytest.raises(ValueError, match=r"0 usable val pairs .*3 or more.*splits\.csv"):
        load_split_pairs(cfg, tmp_path / "run")

"""Bad input through the real commands, as a user types it: each exits non-zero with one line
that names the setting and the fix, and no traceback. Add a row whenever a setting lands."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import TINY, tinygpt_cli

pytestmark = pytest.mark.slow

NO_STEPS = "training.max_steps=null"
WSD = "optimizer/schedule=wsd"

# (overrides, a piece of the message). {dir} is a directory with bad files (below).
TINYGPT = [
    (["model.n_layer=4"], "Key 'n_layer' not in 'ModelConfig'"),
    (["model=d1000"], "Could not find 'model/d1000'"),
    (["model.d_model=30", "model.n_heads=4"], "not divisible by model.n_heads=4"),
    (["model.dropout=2"], "model.dropout=2.0 must be in [0, 1)"),
    (["model.context=0"], "model.context=0 must be a positive integer"),
    (["model.parametrization=mu"], "Invalid value 'mu'"),
    (["model.parametrization=mup", "model.base_width=0"], "model.base_width=0 must be a positive"),
    (["data=text", "data.path=/no/such/file.txt"], "/no/such/file.txt does not exist"),
    (["data=text", "data.path={dir}/latin1.txt"], "data.encoding"),
    (["data=text", "data.path={dir}/latin1.txt", "data.encoding=klingon"], "no such codec"),
    (["data=hf", "data.path=/no/such/dir"], "point data.path at their directory"),
    (["data.fraction=1.5"], "data.fraction=1.5 must be in (0, 1]"),
    (["data.tokenizer=gpt2"], "choose the option with data/tokenizer=gpt2"),
    (["hardware.device=gpu"], "Invalid value 'gpu'"),
    (["hardware.attention=flash3"], "Invalid value 'flash3'"),
    ([NO_STEPS, "training.tokens=-5"], "training.tokens=-5 must be a positive"),
    (["training.batch_size=0"], "training.batch_size=0 must be at least 1"),
    (["optimizer.lr=0"], "optimizer.lr=0.0 must be positive"),
    (["optimizer.weight_decay=-1"], "optimizer.weight_decay=-1.0 must be zero or positive"),
    (["optimizer.grad_accum=0"], "optimizer.grad_accum=0 must be at least 1"),
    (["optimizer.schedule=wsd"], "optimizer/schedule=wsd"),
    ([WSD, "optimizer.schedule.shape=sqrt"], "choose one of linear"),
    ([WSD, "optimizer.schedule.decay_fraction=1.5"], "decay_fraction=1.5 must be in [0.0, 1.0]"),
    ([WSD, "optimizer.schedule.min_lr_ratio=2"], "min_lr_ratio=2.0 must be in [0.0, 1.0]"),
    (["training.budgets=[5000,10000]"], "add optimizer/schedule=wsd"),
    ([WSD, "training.budgets=[5000,10000]"], "drop training.max_steps"),
    ([WSD, NO_STEPS, "isoflop.budgets=[1e3,2e3]"], "every budget is too small"),
    ([WSD, NO_STEPS, "isoflop.budgets=[-1e12]"], "compute budgets must be positive"),
    (["tracking.uri=http://127.0.0.1:9"], "fix tracking.uri"),
    (["seal=lora"], "seal=lora needs seal.base="),
    (["seal=lora", "seal.policy=self"], "choose the option with seal/policy=self"),
    (["seal=lora", "seal.base=/no/such/run"], "point it at a training run's output directory"),
    (["-m", "seed=1", "hardware=cpu", "hydra/launcher=slurm_gpu"], "use hardware=cuda"),
    (["hardware.devices=0"], "hardware.devices=0 must be at least 1"),
    (["hardware.nodes=0"], "hardware.nodes=0 must be at least 1"),
]

# Only where torch sees no CUDA device (as on CI): the ranks are never started.
if not __import__("torch").cuda.is_available():
    TINYGPT.append((["hardware=cuda", "hardware.devices=2"], "torch sees no CUDA device"))

ANALYZE = [
    (["source=csv"], "source.path is not set: add source.path="),
    (["source=csv", "source.path=/no/such.csv"], "source.path=/no/such.csv: no such CSV file"),
    (["source=csv", "source.path={dir}/columns.csv"], "set source.columns.<name>=<column>"),
    (["source=nope"], "Could not find 'source/nope'"),
    (["fit.bogus=1"], "Key 'bogus' not in 'FitConfig'"),
    (["fit.holdout=bogus"], "use none, largest or compute_above:<C>"),
    (["fit.holdout=compute_above:lots"], "'lots' is not a FLOP count"),
    (["fit.bootstrap=-1"], "fit.bootstrap=-1 must be zero or positive"),
    (["fit.delta=0"], "fit.delta=0.0 must be positive"),
    (["source.sweep=nope"], "no sweep named 'nope'"),
    (["source.parameters=all"], "Invalid value 'all', expected one of [total, non_embedding]"),
    (["source.uri=http://127.0.0.1:9"], "fix source.uri"),
    (["source=csv", "source.path={dir}/words.csv"], "holds 'abc' on line 3, not a number"),
    (["source=csv", "source.path={dir}/empty.csv"], "empty.csv is empty: it needs a header row"),
    (["source=csv", "source.path={dir}/header.csv"], "no runs to analyse"),
    (["source=csv", "source.path={dir}/loss.csv"], "lacks the mapped column(s) two of N"),
    (["source=csv", "source.path={dir}/compute.csv"], "two of N→'N', D→'D', C→'C'"),
    (["source=csv", "source.path={dir}"], "no such CSV file"),
    (["source=chinchilla", "source.path={dir}/loss.csv"], "two of N→'Model Size'"),
    (["source=curves"], "source.path is not set"),
    (["source=curves", "source.path={dir}/no-csvs"], "no *.csv files in it"),
    (["source=curves", "source.path={dir}/empty-curve"], "is empty: it needs a header row"),
]

PLAN = [
    (["source=csv"], "source.path is not set: add source.path="),
    (["source=csv", "source.path={dir}/empty.csv", "plan.flops=1e12"], "empty.csv is empty"),
    (["source=csv", "source.path={dir}/words.csv", "plan.flops=1e12"], "not a number"),
    (["source=csv", "source.path={dir}/loss.csv", "plan.flops=1e12"], "two of N"),
    (["fit.bootstrap=-1", "plan.flops=1e12"], "fit.bootstrap=-1 must be zero or positive"),
]

# tinygpt-sample and tinygpt-eval: (app, overrides, a piece of the message).
SAMPLE_EVAL = [
    ("tinygpt.sample", [], "run is not set: add run=<value>"),
    ("tinygpt.sample", ["run={dir}/no-csvs"], "holds no checkpoint (*.pt) to sample from"),
    ("tinygpt.evaluate", [], "run is not set: add run=<value>"),
    ("tinygpt.evaluate", ["run=/no/such/run"], "point it at a training run's output directory"),
    ("tinygpt.evaluate", ["run={dir}/no-csvs"], "holds no step_<N>.pt or final.pt"),
]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bad-files")
    (d / "latin1.txt").write_bytes(b"In the beginning\n\nGod created \xe9 the heaven\n")
    (d / "columns.csv").write_text("params,tokens\n1,2\n")
    (d / "words.csv").write_text("N,D,loss\n1000,100000,2.9\n1000,200000,abc\n")
    (d / "empty.csv").write_text("")
    (d / "header.csv").write_text("N,D,loss\n")
    (d / "loss.csv").write_text("loss\n2.9\n3.1\n")
    (d / "compute.csv").write_text("C,loss\n1e15,2.9\n2e15,2.8\n")  # a compute without sizes
    (d / "no-csvs").mkdir()
    (d / "no-csvs" / "notes.txt").write_text("not a curve")
    (d / "empty-curve").mkdir()
    (d / "empty-curve" / "run.csv").write_text("")
    return d


def _check(proc, message: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def _answers(rows, factory, cache_dir, bad_files, app, prefix=()):
    """Every row's command at once, a few at a time (each mostly waits on imports and the
    store), each in its own directory: {row index: CompletedProcess}."""

    def one(i: int):
        cwd = factory.mktemp(f"{app.split('.')[-1]}-{i}")
        args = [a.format(dir=bad_files) for a in rows[i][0]]
        return tinygpt_cli(*prefix, *args, cwd=cwd, cache_dir=cache_dir, app=app)

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(enumerate(pool.map(one, range(len(rows)))))


# Each command's table and the arguments every row of it starts with.
TABLES = {
    "tinygpt.app": (TINYGPT, TINY),
    "tinygpt.analyze": (ANALYZE, ()),
    "tinygpt.plan": (PLAN, ()),
}


@pytest.fixture(scope="module")
def answers(tmp_path_factory, cache_dir, bad_files):
    """A command's answers to its whole table, run once per module when first asked for."""
    done: dict = {}

    def of(app: str) -> dict:
        if app not in done:
            rows, prefix = TABLES[app]
            done[app] = _answers(rows, tmp_path_factory, cache_dir, bad_files, app, prefix)
        return done[app]

    return of


@pytest.mark.parametrize(
    ("app", "row", "message"),
    [(app, i, m) for app, (rows, _) in TABLES.items() for i, (_, m) in enumerate(rows)],
)
def test_every_command_answers_bad_input_in_one_line(answers, app, row, message):
    _check(answers(app)[row], message)


@pytest.mark.parametrize(("app", "args", "message"), SAMPLE_EVAL)
def test_sample_and_eval_answer_bad_input_in_one_line(
    tmp_path, cache_dir, bad_files, app, args, message
):
    proc = tinygpt_cli(*[a.format(dir=bad_files) for a in args], cwd=tmp_path,
                       cache_dir=cache_dir, app=app)  # fmt: skip
    _check(proc, message)


def test_a_bad_input_leaves_the_files_it_read_as_they_were(bad_files):
    """Nothing above wrote over an input: the bad files are byte for byte as made."""
    assert (bad_files / "words.csv").read_text().endswith("1000,200000,abc\n")
    assert (bad_files / "empty.csv").read_text() == ""
    assert sorted(p.name for p in (bad_files / "no-csvs").iterdir()) == ["notes.txt"]


def test_the_table_covers_at_least_forty_inputs():
    assert len(TINYGPT) + len(ANALYZE) + len(PLAN) + len(SAMPLE_EVAL) >= 40

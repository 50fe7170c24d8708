"""What the user can fix is one line naming the setting; what is a bug keeps its traceback."""

import pytest
from omegaconf import OmegaConf

from tinygpt.data.corpora import text
from tinygpt.errors import TinyGPTError, instantiate


def test_a_target_that_cannot_be_found_or_called_is_the_configs_fault():
    with pytest.raises(TinyGPTError, match="Error locating target 'no.such.thing'"):
        instantiate(OmegaConf.create({"_target_": "no.such.thing"}))
    with pytest.raises(TinyGPTError, match="unexpected keyword argument 'bogus'"):
        instantiate(OmegaConf.create({"_target_": "tinygpt.train.schedules.WSD", "bogus": 1}))


def test_an_error_inside_the_target_is_a_bug_and_keeps_its_type_and_traceback():
    bad = {"_target_": "tinygpt.train.schedules.WSD", "decay_fraction": "abc"}
    with pytest.raises(TypeError, match="'<=' not supported") as info:
        instantiate(OmegaConf.create(bad))
    assert any("schedules.py" in str(entry.path) for entry in info.traceback)


def test_a_user_error_from_the_target_comes_through_as_it_is():
    with pytest.raises(TinyGPTError, match=r"optimizer.schedule.shape='sqrt'"):
        instantiate(OmegaConf.create({"_target_": "tinygpt.train.schedules.WSD", "shape": "sqrt"}))


def test_a_file_that_is_not_utf8_names_itself_the_offset_and_the_fix(tmp_path):
    path = tmp_path / "old.txt"
    path.write_bytes(b"In the beginning\n\nGod created \x9bthe heaven\n")
    with pytest.raises(TinyGPTError) as info:
        text(str(path))
    message = str(info.value)
    assert str(path) in message and "offset 30" in message
    assert "data.encoding" in message and "data.errors=replace" in message
    assert text(str(path), encoding="latin-1")[1] == "God created \x9bthe heaven"
    assert "\ufffd" in text(str(path), errors="replace")[1]
    with pytest.raises(TinyGPTError, match="no such codec"):
        text(str(path), encoding="klingon")


def test_a_sweep_with_a_child_still_running_says_so(tmp_path, capsys):
    from tinygpt.tracking.mlflow_run import Store, Tracker
    from tinygpt.tracking.sweep import MLflowSweepCallback

    store = Store.connect(f"sqlite:///{tmp_path / 'mlflow.db'}", "tinygpt")
    parent = Tracker.start(store, "sweep", {"sweep": "true"})
    done = Tracker.start(store, "seed=1", {}, parent_run_id=parent.run_id)
    done.close("FINISHED")
    Tracker.start(store, "seed=2", {}, parent_run_id=parent.run_id)  # its process died
    callback = MLflowSweepCallback()
    callback.store, callback.tracker = store, parent
    callback._close()
    err = capsys.readouterr().err
    assert "of 2 jobs, 1 never finished" in err and "seed=2" in err
    assert "0 of" not in err and "Retype the sweep command" in err
    assert store.client.get_run(parent.run_id).info.status == "FAILED"

"""source: huggingface models on a host without hub access (this test host has none)."""

from conftest import convert


def test_hub_model_without_hub_access_fails_with_one_clear_line(tmp_path):
    # An empty HF_HOME, and a hub endpoint that refuses connections even on a host that has hub
    # access, so this never downloads 2 GB.
    env = {"HF_HOME": str(tmp_path / "hf-home"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    run = convert("bge-m3", tmp_path / "bge-m3", env=env)
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    assert "hub is unreachable" in errors[0]
    assert "BAAI/bge-m3" in errors[0] and "--quick" in errors[0]
    assert run.summary["exit_code"] == 2
    assert not (tmp_path / "bge-m3").exists()
    assert run.seconds < 60

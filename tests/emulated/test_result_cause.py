"""An E-stop run's result names the E-stop with its event code, not the rail drop that followed (issue 15)."""

from __future__ import annotations

from controller.run import RunOptions, run_main_job


def test_estop_run_result_names_the_press_and_its_code(tmp_path, rig_with_faults, repo_root):
    rig_path = rig_with_faults([{"at_s": 3.0, "target": "mcu", "fault": "estop_press"}])
    opts = RunOptions(rig=str(rig_path), mission=str(repo_root / "missions/square.yaml"), seed=7,
                      runs_dir=str(tmp_path / "runs"), progress=False)
    status, summary, _ = run_main_job(opts)
    assert status == 1 and summary["final_state"] == "estop"
    # the E-stop chain also dropped the valve rail: a symptom, recorded as a fault, not the result
    assert "valve rail dropped by the MCU" in summary["faults"]
    assert summary["result"] == "estop: E-stop pressed (event 901)"

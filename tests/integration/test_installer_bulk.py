"""inall / rmall: every deploy of the package at once, as EasyPack's; failures do not stop the others."""

from __future__ import annotations

import json
import shutil

from test_installer_fixtures import (  # noqa: F401
    DEPLOY,
    alive,
    free_port,
    make_source_tree,
    root,
    run_installer,
    shared_runtime,
    source_tree,
    trial_license,
    wheelhouse,
)


def two_deploy_tree(tmp_path, wheelhouse, source_tree, ports):
    src = make_source_tree(tmp_path / "src2", wheelhouse, params_bytes=1024)
    for lic in (source_tree / "licenses").iterdir():
        shutil.copy2(lic, src / "licenses" / lic.name)
    (src / "package" / "catalog.yml").write_text(
        "deploys:\n"
        + "".join(
            f"  {name}:\n    service: classification\n    port: {port}\n    description: stand-in\n"
            f"    models:\n      classifier: tiny_bundle\n"
            for name, port in zip(("cls-a", "cls-b"), ports)
        )
    )
    return src


def test_inall_then_rmall_keeps_data(tmp_path, wheelhouse, source_tree, trial_license, root):
    ports = [free_port(), free_port()]
    src = two_deploy_tree(tmp_path, wheelhouse, source_tree, ports)
    proc = run_installer(src, root, "inall", "--host", "127.0.0.1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = json.loads(run_installer(src, root, "list", "--json").stdout)["deploys"]
    assert [(d["deploy"], d["state"], d["port"]) for d in listed] == [
        ("cls-a", "running", ports[0]),
        ("cls-b", "running", ports[1]),
    ]
    again = run_installer(src, root, "inall", "--host", "127.0.0.1")
    assert again.returncode == 0 and again.stdout.count("already installed") == 2
    (root / "cls-a" / "data" / "keep.me").write_text("precious")
    pids = [d["pid"] for d in listed]
    proc = run_installer(src, root, "rmall")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not any(alive(p) for p in pids)
    assert (root / "cls-a" / "data" / "keep.me").read_text() == "precious"
    assert json.loads(run_installer(src, root, "list", "--json").stdout)["deploys"] == []
    assert "nothing installed" in run_installer(src, root, "rmall").stdout
    assert run_installer(src, root, "inall", "--stopped", "--host", "127.0.0.1").returncode == 0
    assert run_installer(src, root, "rmall", "--purge").returncode == 0
    assert not (root / "cls-a").exists() and not (root / "cls-b").exists()


def test_inall_goes_on_after_a_failure_and_exits_with_its_code(tmp_path, wheelhouse, source_tree, trial_license, root):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports = [busy.getsockname()[1], free_port()]
        src = two_deploy_tree(tmp_path, wheelhouse, source_tree, ports)
        proc = run_installer(src, root, "inall", "--host", "127.0.0.1", "--stopped")
    assert proc.returncode == 11, proc.stdout + proc.stderr
    assert "1 deploy(s) failed" in proc.stderr and "cls-a: failed" in proc.stdout and "cls-b: installed" in proc.stdout
    listed = json.loads(run_installer(src, root, "list", "--json").stdout)["deploys"]
    assert [d["deploy"] for d in listed] == ["cls-b"]

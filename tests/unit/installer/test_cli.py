"""Argument parsing, aliases, and the mapping of every installer error to its exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from visionpack import errors
from visionpack.installer import cli
from visionpack.installer.context import Context


def parse(*argv: str):
    return cli.build_parser().parse_args(list(argv))


@pytest.mark.parametrize("alias, name", [("in", "install"), ("rm", "remove"), ("li", "list"), ("se", "search")])
def test_easypack_aliases_dispatch_like_the_long_name(alias, name):
    extra = ["demo"] if name in ("install", "remove") else []
    assert parse(alias, *extra).func is parse(name, *extra).func


def test_install_options_and_defaults():
    a = parse("install", "demo-classify")
    assert (a.deploy, a.host, a.port, a.workers, a.force, a.stopped, a.timeout) == (
        "demo-classify",
        "0.0.0.0",
        None,
        1,
        False,
        False,
        120.0,
    )
    a = parse(
        "in", "d", "--host", "127.0.0.1", "--port", "9000", "--workers", "2", "--force", "--stopped", "--timeout", "5"
    )
    assert (a.host, a.port, a.workers, a.force, a.stopped, a.timeout) == ("127.0.0.1", 9000, 2, True, True, 5.0)


def test_runtime_option_of_install_and_inall():
    assert parse("install", "d").runtime == "process" and parse("inall").runtime == "process"
    assert parse("in", "d", "--runtime", "docker").runtime == "docker"
    assert parse("inall", "--runtime", "docker").runtime == "docker"


def test_root_before_or_after_the_command():
    assert parse("--root", "/a", "list").root == "/a"
    assert parse("list", "--root", "/b").root == "/b"
    assert not hasattr(parse("list"), "root")


def test_json_flags_and_optional_status_deploy():
    assert parse("list", "--json").json and parse("search", "--json").json
    assert parse("status").deploy is None and parse("status", "x", "--json").deploy == "x"
    assert parse("remove", "x", "--purge").purge


@pytest.mark.parametrize(
    "argv",
    [
        ["bogus"],
        ["install"],
        ["install", "d", "--workers", "0"],
        ["install", "d", "--port", "http"],
        ["start", "d", "--timeout", "-1"],
        ["install", "d", "--runtime", "podman"],
        [],
    ],
)
def test_bad_usage_exits_2_with_error_and_hint(argv, capsys, tmp_path):
    assert cli.main(argv + ["--root", str(tmp_path)] if argv else [], env={}) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "\nhint: " in err


INSTALLER_ERRORS = [
    c for c in errors.all_error_classes() if issubclass(c, errors.InstallerError) and c is not errors.InstallerError
]


def test_installer_exit_codes_are_distinct():
    codes = [c.exit_code for c in INSTALLER_ERRORS]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("cls", INSTALLER_ERRORS + [errors.LicenseError], ids=lambda c: c.__name__)
def test_every_error_maps_to_its_exit_code(cls, monkeypatch, capsys, tmp_path):
    exc = cls("because", "detail here") if cls is errors.LicenseError else cls("detail here")

    def boom(ctx, args):
        raise exc

    monkeypatch.setattr(cli, "_cmd_list", boom)
    assert cli.main(["--root", str(tmp_path), "list", "--json"], env={}) == cls.exit_code
    out, err = capsys.readouterr()
    assert err.splitlines() == ["error: detail here", f"hint: {cls.hint}"]
    doc = json.loads(out)["error"]
    assert (doc["name"], doc["exit_code"], doc["slug"]) == (cls.__name__, cls.exit_code, cls.slug)


def test_root_from_environment_reaches_the_command(monkeypatch, tmp_path):
    seen = {}

    def capture(ctx: Context, args):
        seen["root"] = ctx.root.path
        seen["top"] = ctx.source.top
        return {}

    monkeypatch.setattr(cli, "_cmd_list", capture)
    assert cli.main(["list"], env={"VISIONPACK_ROOT": str(tmp_path / "r")}) == 0
    assert seen["root"] == tmp_path / "r"
    assert seen["top"] == Path(cli.__file__).resolve().parents[3]


def test_keyboard_interrupt_exits_130(monkeypatch, capsys, tmp_path):
    def interrupt(ctx, args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_list", interrupt)
    assert cli.main(["--root", str(tmp_path), "list"], env={}) == 130
    assert "run the same command again" in capsys.readouterr().err

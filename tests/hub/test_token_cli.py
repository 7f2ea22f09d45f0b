"""``farsight token issue|list|revoke`` with roles and lifetimes, against a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.cli import main
from farsight.errors import AuthError
from hub.auth import Role, TokenStore


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FARSIGHT_DATA_DIR", str(tmp_path))
    return tmp_path


def _store(data_dir: Path) -> TokenStore:
    from farsight.registry import load_registry

    return TokenStore(data_dir / "farsight.db", load_registry(None).departments)


def test_issue_with_a_role_and_a_lifetime_list_and_revoke(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = datetime.now(UTC)
    assert main(["token", "issue", "--user", "wang", "--role", "officer", "--ttl", "8"]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("fs_") and "Role officer" in out.err and "valid until" in out.err
    assert main(["token", "issue", "--user", "li"]) == 0  # default: a viewer, settings' lifetime
    viewer = capsys.readouterr().out.strip()

    store = _store(data_dir)
    try:
        p = store.verify(token)
        assert p.role is Role.OFFICER and p.expires is not None
        assert before + timedelta(hours=8) <= p.expires <= datetime.now(UTC) + timedelta(hours=8)
        v = store.verify(viewer)
        assert v.role is Role.VIEWER and v.expires is not None
        assert v.expires - before > timedelta(days=29)  # hub.token_ttl_h: 30 days

        assert main(["token", "list"]) == 0
        listing = capsys.readouterr().out.splitlines()
        assert "role" in listing[0] and "expires" in listing[0]
        assert " officer " in listing[1] and " viewer " in listing[2]

        assert main(["token", "revoke", str(p.token_id)]) == 0
        with pytest.raises(AuthError, match="revoked"):
            store.verify(token)  # at once, for every process reading the database
    finally:
        store.close()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--role", "root"], "invalid choice: 'root'"),
        (["--ttl", "0"], "between 1 and 8784 hours"),
        (["--ttl", "9000"], "between 1 and 8784 hours"),
        (["--ttl", "soon"], "not a whole number of hours"),
    ],
)
def test_issue_refuses_unknown_roles_and_lifetimes_out_of_bounds(
    data_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["token", "issue", "--user", "wang", *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_revoke_refuses_ids_past_the_column(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["token", "revoke", str(2**64)])
    assert "token ids are 1 to" in capsys.readouterr().err
    assert main(["token", "revoke", "42"]) == 1
    assert "no token 42" in capsys.readouterr().err

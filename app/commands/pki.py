"""``farsight pki``: a private CA for a deployment, the broker's certificate and the clients'
(:mod:`farsight.pki`). The files go to ``--dir`` (default: ``pki`` in the data directory)."""

from __future__ import annotations

import argparse
from pathlib import Path

from farsight import pki
from farsight.errors import PkiError


def _directory(args: argparse.Namespace) -> Path:
    if args.dir is not None:
        return Path(args.dir)
    from farsight.settings import load_settings

    return load_settings(args.config).data_dir / "pki"


def _cmd_init_ca(args: argparse.Namespace) -> int:
    d = _directory(args)
    files = pki.init_ca(
        d, common_name=args.name, days=args.days, key_type=args.key_type, overwrite=args.force
    )
    print(f"CA certificate: {files.cert}")
    print(f"CA key:         {files.key} (0600; keep it off the broker and the clients)")
    print(f"clients trust it with broker.tls.ca_file: {files.cert}")
    return 0


def _cmd_server(args: argparse.Namespace) -> int:
    d = _directory(args)
    files = pki.issue_server(
        d,
        args.name,
        dns_names=args.dns,
        ip_addresses=args.ip,
        days=args.days,
        overwrite=args.force,
    )
    print(f"server certificate: {files.cert}")
    print(f"server key:         {files.key} (0600)")
    print("mosquitto.conf, on the TLS listener (see deploy/mosquitto.conf):")
    print(f"  cafile {pki.ca_files(d).cert}\n  certfile {files.cert}\n  keyfile {files.key}")
    return 0


def _cmd_client(args: argparse.Namespace) -> int:
    d = _directory(args)
    files = pki.issue_client(d, args.identity, days=args.days, overwrite=args.force)
    print(f"client certificate: {files.cert} (CN={args.identity})")
    print(f"client key:         {files.key} (0600)")
    print("settings of that client:")
    print(f"  broker.tls.ca_file: {pki.ca_files(d).cert}")
    print(f"  broker.tls.cert_file: {files.cert}\n  broker.tls.key_file: {files.key}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    d = _directory(args)
    paths = [Path(p) for p in args.files] or pki.certificates_in(d)
    if not paths:
        raise PkiError(f"no certificates in {d}; make a CA with `farsight pki init-ca`")
    ca_file = pki.ca_files(d).cert
    ca = pki.read_certificate(ca_file) if ca_file.exists() else None
    for path in paths:
        cert = pki.read_certificate(path)
        lines = pki.describe(cert, path).lines()
        if ca is not None:
            lines.append(f"  signed by {ca_file}: {'yes' if pki.signed_by(cert, ca) else 'NO'}")
        print("\n".join(lines))
    return 0


def _days(text: str) -> int:
    value = int(text)
    if not 1 <= value <= pki.MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be 1 to {pki.MAX_DAYS}, got {text}")
    return value


def add_pki_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``pki`` and its subcommands to the main CLI."""
    p = sub.add_parser(
        "pki",
        help="make a private CA, the broker's certificate and client certificates",
        description=__doc__,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir", type=Path, default=None, help="folder of the PKI (default: DATA_DIR/pki)"
    )
    making = argparse.ArgumentParser(add_help=False, parents=[common])
    making.add_argument("--force", action="store_true", help="replace files that exist")
    actions = p.add_subparsers(dest="pki_command", metavar="ACTION", required=True)

    a = actions.add_parser("init-ca", parents=[making], help="make the CA (ca.crt, ca.key)")
    a.add_argument("--name", default="Farsight private CA", help="the CA's subject CN")
    a.add_argument("--days", type=_days, default=pki.CA_DAYS, help="validity in days")
    a.add_argument(
        "--key-type",
        choices=pki.KEY_TYPES,
        default="ec-p256",
        help="ec-p256 (default: every TLS stack takes it) or ed25519 (not browsers or older"
        " embedded stacks)",
    )
    a.set_defaults(func=_cmd_init_ca)

    s = actions.add_parser(
        "server", parents=[making], help="a server certificate (server/NAME.crt) for the broker"
    )
    s.add_argument("name", help="the certificate's name and CN, e.g. broker")
    s.add_argument(
        "--dns", action="append", default=[], help="a DNS name it answers to (repeatable)"
    )
    s.add_argument("--ip", action="append", default=[], help="an IP it answers on (repeatable)")
    s.add_argument("--days", type=_days, default=pki.LEAF_DAYS, help="validity in days")
    s.set_defaults(func=_cmd_server)

    c = actions.add_parser(
        "client",
        parents=[making],
        help="a client certificate (client/ID.crt) whose CN is the client's identity",
    )
    c.add_argument("identity", help="the client's identity: its MQTT user name, e.g. ingest")
    c.add_argument("--days", type=_days, default=pki.LEAF_DAYS, help="validity in days")
    c.set_defaults(func=_cmd_client)

    w = actions.add_parser(
        "show", parents=[common], help="print certificates (default: every one in --dir)"
    )
    w.add_argument("files", nargs="*", type=Path, help="certificate files")
    w.set_defaults(func=_cmd_show)

"""Hardware-bound licensing (docs/licensing.md).

Modules, from the machine outward:

    fingerprint   salted hashes of this machine's identifiers; the request file
    license       the file format (armour, envelope, canonical payload); parse()
    verify        vendor public keys, signature, matching rule, dates, scope -> Verdict
    clock         tamper-evident high-water mark of time seen (clock-rollback)
    instances     machine-wide instance slots held with flock (instance-limit)
    gate          LicenseGate: the cached per-request check used by the services
    admin         operator helpers: write_request, diff_report, install_license, ...

Every failure is a visionpack.errors.LicenseError whose ``reason`` is one of
``license.REASONS``. Nothing here imports paddle or flask.
"""

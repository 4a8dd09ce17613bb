"""`conformance list`: the built-in adapters, their versions, devices and capabilities (the optional
methods of the adapter contract each provides), and the suites."""
from __future__ import annotations

from conformance.adapters import BUILTIN
from conformance.commands.report import EXIT_PASS


def _installed(packages: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """({package: version} from the distributions' metadata, [missing packages]); imports nothing."""
    from importlib import metadata

    found, missing = {}, []
    for choice in packages:
        for dist in choice.split("|"):
            try:
                found[dist] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        else:
            missing.append(choice)
    return found, missing


def cmd_list(args) -> int:
    """Built-in adapters with the versions their packages' metadata gives (fast, no framework
    imported), or with `--check`, whether each really loads in its own worker (slow)."""
    from conformance.adapter import capabilities
    from conformance.execution.loading import import_adapter
    from conformance.cases.suites import SUITES
    from conformance.execution.devices import ACCELERATOR

    checked = {}
    if args.check:
        from conformance.execution.runner import probe

        checked = probe(list(BUILTIN))
    print("adapters:" + ("" if args.check else "  (versions from package metadata; --check loads each)"))
    for name in BUILTIN:
        cls = import_adapter(name)
        family = getattr(cls, "device_family", None)
        usable = "cpu" + (f",{ACCELERATOR[family]}" if family in ACCELERATOR else "")
        if args.check:
            ok, info = checked[name]
        else:
            found, missing = _installed(cls.packages)
            ok = not missing
            info = ", ".join(f"{k} {v}" for k, v in found.items()) + (f"; missing {', '.join(missing)}" if missing else "")
        print(f"  {'ok  ' if ok else 'FAIL'} {name:20s} devices {usable:9s} {info}")
        print(f"       {'':20s} provides {' '.join(capabilities(cls)) or 'nothing optional'}")
    print("suites: " + ", ".join(f"{n} ({len(f())} cases)" for n, f in SUITES.items()))
    return EXIT_PASS

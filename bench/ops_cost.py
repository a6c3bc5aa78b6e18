"""What the operational features cost on the fastest path: 1 KiB file, keep-alive, 50
connections, reactor on one core and wrk on the other, with and without `--metrics` (and with
`--metrics --health --forwarded-allow-ips`), in alternating rounds so drift hits all alike.

Prints req/s and the server's CPU microseconds per request for each, and the ratio of each
variant to the plain server in the same round (median over rounds). Run it under the bench
lock: `flock /tmp/reactor-bench.lock python bench/ops_cost.py`.
"""

import argparse
import os
import statistics
import sys
import tempfile

import servers_load as load
import servers_setup as setup

VARIANTS = {
    "plain": [],
    "metrics": ["--metrics", "/metrics"],
    "metrics+health+forwarded": ["--metrics", "/metrics", "--health", "/healthz",
                                 "--forwarded-allow-ips", "10.0.0.0/8"],
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 3 s")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="which to run (plain always runs: it is the reference)")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--wrk-cpu", type=int, default=1)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration = 3, 3.0
    variants = {name: VARIANTS[name] for name in VARIANTS
                if name == "plain" or name in args.variants}
    setup.ensure_command("wrk", "wrk")
    with tempfile.TemporaryDirectory() as workdir:
        tree = f"{workdir}/tree"
        os.mkdir(tree)
        digests = setup.build_tree(tree)
        scripts = load.write_scripts(workdir)
        servers = {}
        for name, flags in variants.items():
            spec = setup.Spec(name, name, lambda port, tree, work, flags=flags:
                              setup._reactor_argv(port, tree, work) + flags)
            servers[name] = setup.Server(spec, tree, workdir, args.server_cpu, digests)
            servers[name].start()
        try:
            results = {name: [] for name in variants}
            for rnd in range(args.rounds):
                names = list(variants)
                names = names[rnd % len(names):] + names[:rnd % len(names)]
                for name in names:
                    server = servers[name]
                    before = setup._cpu_s(server.pids)
                    result = load.run(server.port, setup.SMALL[0],
                                      load.Load(50, "keepalive", args.duration), scripts,
                                      args.wrk_cpu)
                    if "failed" in result:
                        print(f"  {name}: {result['failed']}", file=sys.stderr)
                        continue
                    result["cpu_us"] = ((setup._cpu_s(server.pids) - before) * 1e6
                                        / result["requests"])
                    results[name].append(result)
                    print(f"  round {rnd + 1} {name:26} {result['rps']:9,.0f} req/s "
                          f"{result['cpu_us']:6.2f} us CPU/req  {result['errors']} errors",
                          flush=True)
        finally:
            for server in servers.values():
                server.stop()
    print(f"\n1 KiB keep-alive, 50 connections, {args.rounds} rounds of {args.duration:g} s "
          f"(median)\n")
    print("| variant | req/s | us CPU/req | req/s vs plain | CPU/req vs plain |")
    print("|---|---|---|---|---|")
    plain = results["plain"]
    for name, runs in results.items():
        if not runs:
            continue
        rps = statistics.median(r["rps"] for r in runs)
        cpu = statistics.median(r["cpu_us"] for r in runs)
        ratio_rps = statistics.median(a["rps"] / b["rps"] for a, b in zip(runs, plain))
        ratio_cpu = statistics.median(a["cpu_us"] / b["cpu_us"] for a, b in zip(runs, plain))
        print(f"| {name} | {rps:,.0f} | {cpu:.2f} | {ratio_rps:.3f} | {ratio_cpu:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

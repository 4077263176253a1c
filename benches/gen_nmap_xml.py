#!/usr/bin/env python3
"""Write a large, deterministic nmap XML file shaped like real `nmap -sV -oX` output.

Used to benchmark src/scan/nmap_xml.rs (throughput target: >= 150 MB/s on ~15 MB):

    python3 benches/gen_nmap_xml.py --hosts 8000 --ports-per-host 7 --out /tmp/nmap-15mb.xml

Each host is up, has an IPv4 address, a PTR hostname, an <extraports> summary and
--ports-per-host open TCP ports with <service name product version extrainfo method conf>
and <cpe> children, like nmap 7.9x prints them. Python 3 standard library only.
"""

import argparse
import random
import sys
from xml.sax.saxutils import quoteattr

# (port, name, product, version, extrainfo, ostype, cpes) as nmap -sV reports them.
SERVICES = [
    (22, "ssh", "OpenSSH", "8.9p1 Ubuntu 3ubuntu0.6", "Ubuntu Linux; protocol 2.0", "Linux",
     ["cpe:/a:openbsd:openssh:8.9p1", "cpe:/o:linux:linux_kernel"]),
    (80, "http", "nginx", "1.18.0", "Ubuntu", "Linux",
     ["cpe:/a:igor_sysoev:nginx:1.18.0", "cpe:/o:linux:linux_kernel"]),
    (443, "http", "Apache httpd", "2.4.52", "(Ubuntu)", None,
     ["cpe:/a:apache:http_server:2.4.52"]),
    (3306, "mysql", "MySQL", "8.0.36-0ubuntu0.22.04.1", None, None,
     ["cpe:/a:mysql:mysql:8.0.36-0ubuntu0.22.04.1"]),
    (5432, "postgresql", "PostgreSQL DB", "14.9 - 14.11", None, None,
     ["cpe:/a:postgresql:postgresql:14"]),
    (6379, "redis", "Redis key-value store", "7.0.15", None, None,
     ["cpe:/a:redislabs:redis:7.0.15"]),
    (8080, "http", "Jetty", "9.4.53.v20231009", None, None,
     ["cpe:/a:eclipse:jetty:9.4.53.v20231009"]),
    (9100, "jetdirect", None, None, None, None, []),
    (11211, "memcached", "Memcached", "1.6.14", "uptime 86400 seconds", None,
     ["cpe:/a:memcached:memcached:1.6.14"]),
    (25, "smtp", "Postfix smtpd", None, None, None, ["cpe:/a:postfix:postfix"]),
    (53, "domain", "ISC BIND", "9.18.18-0ubuntu0.22.04.2", "Ubuntu Linux", "Linux",
     ["cpe:/a:isc:bind:9.18.18-0ubuntu0.22.04.2", "cpe:/o:canonical:ubuntu_linux"]),
    (3389, "ms-wbt-server", "Microsoft Terminal Services", None, None, "Windows",
     ["cpe:/o:microsoft:windows"]),
]


def service_xml(svc, tunnel):
    _, name, product, version, extrainfo, ostype, cpes = svc
    attrs = [("name", name)]
    for key, val in (("product", product), ("version", version), ("extrainfo", extrainfo),
                     ("ostype", ostype)):
        if val is not None:
            attrs.append((key, val))
    if tunnel:
        attrs.append(("tunnel", "ssl"))
    attrs += [("method", "probed"), ("conf", "10")]
    head = "<service " + " ".join(f"{k}={quoteattr(v)}" for k, v in attrs)
    if not cpes:
        return head + "/>"
    return head + ">" + "".join(f"<cpe>{c}</cpe>" for c in cpes) + "</service>"


def host_xml(i, ports_per_host, rng, t0):
    ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    start = t0 + i // 50
    ports = sorted(rng.sample(SERVICES, min(ports_per_host, len(SERVICES))))
    extra = max(0, 1000 - len(ports))
    out = [
        f'<host starttime="{start}" endtime="{start + 12}">'
        f'<status state="up" reason="syn-ack" reason_ttl="63"/>\n',
        f'<address addr="{ip}" addrtype="ipv4"/>\n',
        "<hostnames>\n",
        f'<hostname name="vm-{i}.project-{i % 37}.cloud.internal" type="PTR"/>\n',
        "</hostnames>\n",
        f'<ports><extraports state="closed" count="{extra}">\n',
        f'<extrareasons reason="reset" count="{extra}" proto="tcp" '
        f'ports="1-21,23-24,26-52,54-79,81-442,444-1000"/>\n',
        "</extraports>\n",
    ]
    for svc in ports:
        port = svc[0]
        out.append(
            f'<port protocol="tcp" portid="{port}"><state state="open" reason="syn-ack" '
            f'reason_ttl="63"/>{service_xml(svc, port == 443)}</port>\n'
        )
    out += [
        "</ports>\n",
        f'<times srtt="{rng.randint(200, 9000)}" rttvar="{rng.randint(100, 5000)}" to="100000"/>\n',
        "</host>\n",
    ]
    return "".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, required=True)
    ap.add_argument("--ports-per-host", type=int, default=7)
    ap.add_argument("--out", required=True, help="output file, or - for stdout")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.ports_per_host > len(SERVICES):
        ap.error(f"--ports-per-host is at most {len(SERVICES)}")

    rng = random.Random(args.seed)
    t0 = 1700000000
    cmd = f"nmap -sV -T4 -oX - 10.0.0.0/16 (synthetic, {args.hosts} hosts)"
    f = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")
    with f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE nmaprun>\n')
        f.write('<?xml-stylesheet href="file:///usr/bin/../share/nmap/nmap.xsl" type="text/xsl"?>\n')
        f.write(f"<!-- Nmap 7.94SVN scan initiated as: {cmd} -->\n")
        f.write(f'<nmaprun scanner="nmap" args={quoteattr(cmd)} start="{t0}" '
                f'startstr="Tue Nov 14 22:13:20 2023" version="7.94SVN" xmloutputversion="1.05">\n')
        f.write('<scaninfo type="syn" protocol="tcp" numservices="1000" services="1-1000"/>\n')
        f.write('<verbose level="0"/>\n<debugging level="0"/>\n')
        for i in range(args.hosts):
            if i and i % 1000 == 0:
                pct = 100.0 * i / args.hosts
                f.write(f'<taskprogress task="Service scan" time="{t0 + i // 50}" '
                        f'percent="{pct:.2f}" remaining="{args.hosts - i}" '
                        f'etc="{t0 + args.hosts // 50}"/>\n')
            f.write(host_xml(i, args.ports_per_host, rng, t0))
        end = t0 + args.hosts // 50 + 12
        f.write(f'<runstats><finished time="{end}" timestr="Tue Nov 14 23:13:20 2023" '
                f'summary="Nmap done; {args.hosts} IP addresses ({args.hosts} hosts up)" '
                f'elapsed="{end - t0}.00" exit="success"/>'
                f'<hosts up="{args.hosts}" down="0" total="{args.hosts}"/>\n</runstats>\n</nmaprun>\n')


if __name__ == "__main__":
    main()

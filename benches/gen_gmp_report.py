#!/usr/bin/env python3
"""Write a large, deterministic GMP report shaped like gvmd 22.8 `get_reports` output.

Used to benchmark the streaming report parser in src/scan/gmp_xml.rs:

    python3 benches/gen_gmp_report.py --results 200000 --out /tmp/gmp-report.xml

The document is what `<get_reports report_id=.. details="1" ignore_pagination="1"/>` returns:
a `get_reports_response` wrapping the export `report` and the inner `report` with gmp/version,
filters, scan_run_status, ports, then `results` whose `result` elements follow
tests/fixtures/gvm/reports/gmp22.8-report.xml: mixed-content `host` (IP text, `asset`,
`hostname`), `nvt` with `severities` (cvss_base_v2 or cvss_base_v3), `tags`, `solution`,
`epss` (nested `cve`/`severity`), `refs` (cve, url, cert-bund, dfn-cert, and gvmd's empty
`<ref type="cve" id="">`), `detection/result` nested in some results, `qod`, `description`;
then result_count, per-host `host` blocks and `errors`. Python 3 standard library only.
"""

import argparse
import random
import sys
import uuid
from xml.sax.saxutils import escape, quoteattr

NVTS = [
    ("1.3.6.1.4.1.25623.1.0.117274", "SSL/TLS: Deprecated TLSv1.0 and TLSv1.1 Protocol Detection",
     "SSL and TLS", "4.3", "AV:N/AC:M/Au:N/C:N/I:P/A:N", "cvss_base_v2", "Medium"),
    ("1.3.6.1.4.1.25623.1.0.105610", "Weak MAC Algorithm(s) Supported (SSH)", "SSL and TLS",
     "2.6", "AV:N/AC:H/Au:N/C:P/I:N/A:N", "cvss_base_v2", "Low"),
    ("1.3.6.1.4.1.25623.1.0.836484", "Microsoft Windows Multiple Vulnerabilities (KB5062557)",
     "Windows : Microsoft Bulletins", "9.8", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
     "cvss_base_v3", "High"),
    ("1.3.6.1.4.1.25623.1.0.107305", "Sensitive File Disclosure (HTTP)", "Web application abuses",
     "5.0", "AV:N/AC:L/Au:N/C:P/I:N/A:N", "cvss_base_v2", "Medium"),
    ("1.3.6.1.4.1.25623.1.0.100072", "Check if Mailserver answer to VRFY and EXPN requests",
     "SMTP problems", "5.0", "AV:N/AC:L/Au:N/C:N/I:N/A:P", "cvss_base_v2", "Medium"),
    ("1.3.6.1.4.1.25623.1.0.150713", "OpenSSH < 9.8 RCE Vulnerability (regreSSHion)", "General",
     "8.1", "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", "cvss_base_v3", "High"),
]
PORTS = ["22/tcp", "25/tcp", "80/tcp", "443/tcp", "3389/tcp", "8083/tcp", "53/udp", "general/tcp"]
TAGS = ("cvss_base_vector={v}|summary=The remote service is affected by the issue described in "
        "the referenced advisories.|insight=The flaw exists because the service accepts input it "
        "should reject.|affected=All versions before the fixed release.|impact=Successful "
        "exploitation may allow an attacker to &apos;read&apos; sensitive data.|solution=Update to "
        "the latest version.|vuldetect=Checks if a vulnerable version is present on the target "
        "host.|solution_type=VendorFix")


def det_uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def result_xml(rng, i, n_hosts):
    oid, name, family, cvss, vector, sev_type, threat = NVTS[i % len(NVTS)]
    host_n = i % n_hosts
    ip = "10.%d.%d.%d" % (host_n >> 16 & 255, host_n >> 8 & 255, host_n & 255)
    port = PORTS[(i * 7) % len(PORTS)]
    cves = ["CVE-20%02d-%d" % (rng.randint(10, 25), rng.randint(1000, 49999))
            for _ in range(rng.choice((0, 1, 1, 2, 3, 5)))]
    refs = ['<ref type="bid" id=""></ref>']
    refs += ['<ref type="cve" id=%s></ref>' % quoteattr(c) for c in cves] or ['<ref type="cve" id=""></ref>']
    refs.append('<ref type="URL" id="https://example.org/advisory/%d"></ref>' % i)
    if i % 3 == 0:
        refs.append('<ref type="cert-bund" id="WID-SEC-2025-%04d"></ref>' % (i % 9999))
        refs.append('<ref type="dfn-cert" id="DFN-CERT-2025-%04d"></ref>' % (i % 9999))
    detection = ""
    if i % 4 == 0:
        detection = ('<detection><result id="%s"><details><detail><name>product</name>'
                     '<value>cpe:/a:ietf:transport_layer_security:1.0</value></detail>'
                     '<detail><name>location</name><value>%s</value></detail></details></result>'
                     '</detection>' % (det_uuid(rng), port))
    epss = ""
    if cves:
        epss = ('<epss><max_severity><score>0.00143</score><percentile>0.35177</percentile>'
                '<cve id="%s"><severity>%s</severity></cve></max_severity></epss>' % (cves[0], cvss))
    return (
        '<result id="%s"><name>%s</name><owner><name>admin</name></owner>'
        '<modification_time>2025-12-08T16:10:32Z</modification_time><comment></comment>'
        '<creation_time>2025-12-08T16:10:32Z</creation_time>%s'
        '<host>%s<asset asset_id="%s"></asset><hostname>host-%d.example</hostname></host>'
        '<port>%s</port><nvt oid="%s"><type>nvt</type><name>%s</name><family>%s</family>'
        '<cvss_base>%s</cvss_base><severities score="%s"><severity type="%s"><origin></origin>'
        '<date></date><score>%s</score><value>%s</value></severity></severities>'
        '<tags>%s</tags><solution type="VendorFix">Update to the latest version.</solution>%s'
        '<refs>%s</refs></nvt><scan_nvt_version>2025-05-09T15:42:11Z</scan_nvt_version>'
        '<threat>%s</threat><severity>%s</severity><qod><value>%d</value><type></type></qod>'
        '<description>Installed version: 1.%d\nFixed version:     1.%d\n</description>'
        '<original_threat>%s</original_threat><original_severity>%s</original_severity>'
        '<compliance>undefined</compliance></result>'
        % (det_uuid(rng), escape(name), detection, ip, det_uuid(rng), host_n, port, oid,
           escape(name), escape(family), cvss, cvss, sev_type, cvss, vector, TAGS.format(v=vector),
           epss, "".join(refs), threat, cvss, rng.choice((70, 80, 97, 98, 99)), i % 97, i % 97 + 1,
           threat, cvss))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=int, required=True, help="number of report/results/result")
    ap.add_argument("--hosts", type=int, default=0, help="distinct hosts (default: results/50, min 1)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", required=True, help="output file ('-' for stdout)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    n = args.results
    n_hosts = args.hosts or max(1, n // 50)
    rid = det_uuid(rng)
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8", newline="")
    w = out.write
    w('<get_reports_response status="200" status_text="OK">')
    w('<report id="%s" format_id="a994b278-1f62-11e1-96ac-406186ea4fc5" extension="xml" '
      'content_type="text/xml"><owner><name>admin</name></owner><name>2025-12-08T15:46:18Z</name>'
      '<task id="e966a693-5c95-47d2-92ab-718306bdd735"><name>stinger-bench</name></task>'
      '<report id="%s"><gmp><version>22.8</version></gmp>' % (rid, rid))
    w('<filters id=""><term>apply_overrides=0 min_qod=70 rows=-1 levels=chmlg first=1</term>'
      '<filter>Critical</filter><filter>High</filter><filter>Medium</filter><filter>Low</filter>'
      '<filter>Log</filter></filters><scan_run_status>Done</scan_run_status>'
      '<hosts><count>%d</count></hosts><task id="e966a693-5c95-47d2-92ab-718306bdd735">'
      '<name>stinger-bench</name><progress>100</progress></task>' % n_hosts)
    w('<ports start="1" max="-1"><count>%d</count>' % len(PORTS))
    for p in PORTS:
        w('<port>%s<host>10.0.0.0</host><severity>5.0</severity><threat>Medium</threat></port>' % p)
    w('</ports><results start="1" max="-1">')
    for i in range(n):
        w(result_xml(rng, i, n_hosts))
    w('</results><result_count>%d<full>%d</full><filtered>%d</filtered></result_count>' % (n, n, n))
    for h in range(n_hosts):
        w('<host><ip>10.%d.%d.%d</ip><asset asset_id="%s"/><start>2025-12-08T15:46:27Z</start>'
          '<end>2025-12-08T16:32:17Z</end><detail><name>hostname</name><value>host-%d.example</value>'
          '<source><type>nvt</type></source><extra/></detail></host>'
          % (h >> 16 & 255, h >> 8 & 255, h & 255, det_uuid(rng), h))
    w('<errors><count>1</count><error><host>10.0.0.1<asset asset_id=""/></host>'
      '<port>general/tcp</port><description>NVT timed out after 320 seconds.</description>'
      '<nvt oid="1.3.6.1.4.1.25623.1.0.12241"><type>nvt</type><name>timeout</name>'
      '<cvss_base>0.0</cvss_base></nvt><severity>-3</severity></error></errors>')
    w('</report></report><reports start="1" max="-1"/>'
      '<report_count>1<filtered>1</filtered><page>1</page></report_count></get_reports_response>')
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()

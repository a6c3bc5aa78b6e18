"""Grade reactor's TLS settings with sslyze against Mozilla's "intermediate" profile.

    pip install sslyze                # not a test dependency: it ships its own OpenSSL
    python bench/tls_grade.py [--rsa] [--keep REPORT.txt]

Makes a throwaway CA and a 90-day certificate for localhost with the openssl command (shaped
as a public CA issues them, so that sslyze's certificate rules judge the server rather than
the test certificate), starts `python -m reactor` on 127.0.0.1 with it, runs
`sslyze --mozilla_config=intermediate` with that CA trusted, prints sslyze's report, and exits
with sslyze's status (0: compliant). Only ever aims at 127.0.0.1.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_certificates(folder, rsa: bool) -> dict:
    paths = {name: os.path.join(folder, name + ".pem")
             for name in ("ca", "ca-key", "cert", "key", "csr")}
    key = ["-newkey", "rsa:2048"] if rsa else ["-newkey", "ec", "-pkeyopt",
                                               "ec_paramgen_curve:P-256"]
    extensions = os.path.join(folder, "leaf.ext")
    with open(extensions, "w") as file:
        file.write("basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature" + (",keyEncipherment" if rsa else "") + "\n"
                   "extendedKeyUsage=serverAuth\n"
                   "subjectAltName=DNS:localhost,IP:127.0.0.1\n")

    def openssl(*arguments):
        subprocess.run(["openssl", *arguments], check=True, capture_output=True)

    openssl("req", "-x509", *key, "-nodes", "-days", "365", "-subj", "/CN=reactor test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", paths["ca-key"], "-out", paths["ca"])
    openssl("req", "-new", *key, "-nodes", "-subj", "/CN=localhost",
            "-keyout", paths["key"], "-out", paths["csr"])
    openssl("x509", "-req", "-in", paths["csr"], "-CA", paths["ca"], "-CAkey", paths["ca-key"],
            "-CAcreateserial", "-days", "90", "-sha256", "-extfile", extensions,
            "-out", paths["cert"])
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rsa", action="store_true", help="an RSA certificate (default ECDSA)")
    parser.add_argument("--keep", metavar="FILE", help="also write sslyze's report here")
    args = parser.parse_args()
    sslyze = shutil.which("sslyze") or os.path.join(os.path.dirname(sys.executable), "sslyze")
    if not shutil.which("openssl"):
        print("tls_grade: needs the openssl command", file=sys.stderr)
        return 2
    if not os.path.exists(sslyze):
        print("tls_grade: needs sslyze (pip install sslyze)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        paths = make_certificates(folder, args.rsa)
        server = subprocess.Popen(
            [sys.executable, "-m", "reactor", "--bind", "127.0.0.1", "-p", "0", "--no-access-log",
             "--tls-cert", paths["cert"], "--tls-key", paths["key"], "-d", folder],
            stdout=subprocess.PIPE, text=True, cwd=REPO)
        try:
            line = server.stdout.readline()
            print(line.strip())
            port = int(line.split("https://127.0.0.1:")[1].split("/")[0])
            result = subprocess.run([sslyze, "--mozilla_config=intermediate", "--certinfo",
                                     "--certinfo_ca_file", paths["ca"], f"localhost:{port}"],
                                    capture_output=True, text=True, timeout=300)
        finally:
            server.terminate()
            server.wait(10)
    print(result.stdout, result.stderr, sep="")
    if args.keep:
        with open(args.keep, "w") as report:
            report.write(result.stdout)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())

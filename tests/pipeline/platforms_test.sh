#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# data/platforms.json (the platform notes nmimgrctl and the docs use):
# well formed, every entry complete and with a source, every reported port
# 0x61 byte giving the entry's code under the default mask 0xc0, every code
# a policy nmimgr-load accepts, and docs/platforms.md naming the same
# platforms with the same codes.  It is installed where the package puts it.
# shellcheck source=tests/pipeline/lib.sh
. "$(dirname "$0")/lib.sh"
load=${NMIMGR_LOAD_BIN:?}
data=$NMIMGR_SOURCE_DIR/data/platforms.json
doc=$NMIMGR_SOURCE_DIR/docs/platforms.md
command -v python3 > /dev/null || skip "python3 is missing"
fresh_work
cd "$NMIMGR_TEST_WORK" || exit 1

# one line per problem, then "codes:" and "ids:" lines for the checks below
if ! python3 - "$data" "$doc" > check.out 2>&1 << 'PY'; then
import json, re, sys
data, doc = sys.argv[1], open(sys.argv[2]).read()
d = json.load(open(data))
assert d.get("schema") == "nmimgr-platforms/1", "schema is not nmimgr-platforms/1"
need = {"id": str, "name": str, "trigger": str, "nmi_type": str, "code": str,
        "reason_bytes": list, "notes": str, "drivers": list, "verified": str, "sources": list}
ids, codes = [], set()
for p in d["platforms"]:
    pid = p.get("id", "?")
    for key, kind in need.items():
        if not isinstance(p.get(key), kind) or not p[key] and key not in ("reason_bytes", "drivers"):
            print(f"{pid}: {key} missing or empty")
    if p.get("nmi_type") not in ("unknown", "serr", "iochk"):
        print(f"{pid}: nmi_type {p.get('nmi_type')!r} is not unknown, serr or iochk")
    code = int(p["code"], 16)
    for byte in p["reason_bytes"]:
        if int(byte, 16) & 0xC0 != code:
            print(f"{pid}: byte {byte} is code {int(byte, 16) & 0xC0:#04x} under mask 0xc0, not {p['code']}")
    if not re.search(rf"^## `{re.escape(pid)}`: {re.escape(p['name'])}$", doc, re.M):
        print(f"{pid}: no section in docs/platforms.md")
    if not re.search(rf"^\| `{re.escape(pid)}`: .*\| {re.escape(p['code'])} \|", doc, re.M):
        print(f"{pid}: docs/platforms.md's table does not give code {p['code']}")
    ids.append(pid)
    codes.add(p["code"])
if len(set(ids)) != len(ids):
    print("duplicate ids")
documented = re.findall(r"^## `([^`]+)`", doc, re.M)
if sorted(documented) != sorted(ids):
    print(f"docs/platforms.md sections {sorted(documented)} are not the data's {sorted(ids)}")
print("codes:", " ".join(sorted(codes)))
print("ids:", len(ids))
PY
	cat check.out
	fail "platforms.json could not be checked"
	finish
fi
problems=$(grep -v '^codes: \|^ids: ' check.out || true)
expect_eq "every entry complete, its bytes give its code, the doc agrees" "$problems" ""
expect_match "the known platforms are there" "$(grep '^ids: ' check.out)" "ids: 1[0-9]"
read -r -a codes <<< "$(sed -n 's/^codes: //p' check.out)"
for code in "${codes[@]}"; do
	printf 'panic = %s\n' "$code" > conf
	if "$load" -c conf --check > /dev/null 2>&1; then pass "code $code is a policy nmimgr-load accepts"; else fail "code $code is a policy nmimgr-load accepts"; fi
done
stage_install "$PWD/stage"
if cmp -s "$data" stage/usr/share/nmimgr/platforms.json; then pass "installed as /usr/share/nmimgr/platforms.json"; else fail "installed as /usr/share/nmimgr/platforms.json"; fi
finish

#!/usr/bin/env python3
# Checks a table of the Chinese statutory holidays that fall on lunar or
# solar-term dates (config/lunar-holidays.csv) against lunar-python 1.4.8
# (https://github.com/6tail/lunar-python, MIT, pure Python, no dependencies;
# install with `python3 -m pip install lunar-python==1.4.8`).
#
# Header: year,chuxi,chunjie,qingming,duanwu,zhongqiu, one row per year, ISO dates.
#   chuxi    除夕  last day of the 12th lunar month before 正月 (腊月廿九 when 腊月 has 29 days)
#   chunjie  春节  正月初一
#   qingming 清明节 the day of the Qingming solar term (sun at 15° apparent longitude), UTC+8
#   duanwu   端午节 五月初五
#   zhongqiu 中秋节 八月十五
# Usage: check-lunar-holidays.py PATH.csv  -- prints "N rows checked", or exits 1
# naming every row and column that disagrees with the library.
import csv
import datetime as dt
import sys

try:
    from lunar_python import Lunar, LunarMonth
except ImportError:
    raise SystemExit("lunar-python is not installed: python3 -m pip install lunar-python==1.4.8")

PINNED = "1.4.8"
HEADER = ["year", "chuxi", "chunjie", "qingming", "duanwu", "zhongqiu"]


def day(solar):
    return dt.date(solar.getYear(), solar.getMonth(), solar.getDay())


def expected(year):
    chunjie = day(Lunar.fromYmd(year, 1, 1).getSolar())
    last = LunarMonth.fromYm(year - 1, 12).getDayCount()  # 29 or 30
    chuxi = day(Lunar.fromYmd(year - 1, 12, last).getSolar())
    if chuxi + dt.timedelta(days=1) != chunjie:
        raise SystemExit(f"library inconsistency in {year}: 除夕 {chuxi}, 春节 {chunjie}")
    # lunar-python gives solar-term times in Beijing time (UTC+8).
    qingming = day(Lunar.fromYmd(year, 1, 1).getJieQiTable()["清明"])
    if (qingming.year, qingming.month) != (year, 4):
        raise SystemExit(f"library gave 清明 {qingming} for {year}")
    return {
        "chuxi": chuxi,
        "chunjie": chunjie,
        "qingming": qingming,
        "duanwu": day(Lunar.fromYmd(year, 5, 5).getSolar()),
        "zhongqiu": day(Lunar.fromYmd(year, 8, 15).getSolar()),
    }


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: check-lunar-holidays.py PATH.csv")
    path = sys.argv[1]
    from importlib.metadata import version
    if version("lunar_python") != PINNED:
        print(f"warning: lunar-python {version('lunar_python')} installed, table checked against {PINNED}", file=sys.stderr)
    errors, seen, n = [], set(), 0
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != HEADER:
            raise SystemExit(f"{path}: header is {header}, expected {','.join(HEADER)}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(HEADER):
                errors.append(f"{path}:{line}: {len(row)} fields, expected {len(HEADER)}")
                continue
            try:
                year = int(row[0])
                got = {k: dt.date.fromisoformat(v) for k, v in zip(HEADER[1:], row[1:])}
            except ValueError as e:
                errors.append(f"{path}:{line}: unreadable row {row}: {e}")
                continue
            if year in seen:
                errors.append(f"{path}:{line}: year {year} appears twice")
            seen.add(year)
            want = expected(year)
            for k in HEADER[1:]:
                if got[k] != want[k]:
                    errors.append(f"{path}:{line}: {year} {k} is {got[k]}, lunar-python says {want[k]}")
            n += 1
    if errors:
        print("\n".join(errors), file=sys.stderr)
        raise SystemExit(f"{len(errors)} disagreement(s) in {path} ({n} rows read)")
    if n == 0:
        raise SystemExit(f"{path}: no rows")
    print(f"{n} rows checked")


if __name__ == "__main__":
    main()

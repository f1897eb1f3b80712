"""PySpark's string functions: output names, values, NULLs and errors as PySpark 4.3 gives
them (each expected value below was read off PySpark 4.3)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from unbounded.engine.java_format import java_format
from unbounded.engine.string_functions import soundex
from unbounded.errors import AnalysisException, IllegalArgumentException, SparkRuntimeException
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

URL = "http://u@host:8/p/a?k=v&q=1#f"


@pytest.fixture
def df(spark):
    rows = [(0.5, 3, "Hello"), (-1.0, None, None), (None, -4, "ab,cd"), (2.0, 0, "")]
    return spark.createDataFrame(rows, "x double, i int, s string")


def _rows(frame):
    return frame.columns, [tuple(r) for r in frame.collect()]


def _one(df, *cols):
    return tuple(df.limit(1).select(*cols).collect()[0])


def test_like_family_names_and_matches(df):
    names, rows = _rows(df.select(
        F.like("s", F.lit("H%")), F.ilike("s", F.lit("h%")), F.rlike("s", F.lit("l+")),
        F.regexp("s", F.lit("l+")), F.regexp_like("s", F.lit("^a")),
        F.like("s", F.lit("a%"), F.lit("/"))))
    assert names == ["s LIKE H%", "ilike(s, h%)", "RLIKE(s, l+)", "REGEXP(s, l+)",
                     "REGEXP_LIKE(s, ^a)", "s LIKE a% ESCAPE '/'"]
    assert rows == [(True, True, True, True, False, False), (None,) * 6,
                    (False, False, False, False, True, True), (False,) * 6]


def test_prefixes_and_slices(df):
    names, rows = _rows(df.select(
        F.startswith("s", F.lit("He")), F.endswith("s", F.lit("cd")), F.contains("s", F.lit("l")),
        F.substring_index("s", ",", 1), F.substring_index("s", "l", -1), F.left("s", F.lit(2)),
        F.right("s", F.lit(2))))
    assert names == ["startswith(s, He)", "endswith(s, cd)", "contains(s, l)",
                     "substring_index(s, ,, 1)", "substring_index(s, l, -1)", "left(s, 2)",
                     "right(s, 2)"]
    assert rows == [(True, False, True, "Hello", "o", "He", "lo"), (None,) * 7,
                    (False, True, False, "ab", "ab,cd", "ab", "cd"),
                    (False, False, False, "", "", "", "")]
    assert _one(df, F.substring_index("s", ",", 0), F.substring_index("s", "l", 5),
                F.left("s", F.lit(0)), F.right("s", F.lit(-1)), F.left("s", F.lit(99))) == \
        ("", "Hello", "", "", "Hello")


def test_locate_translate_repeat_overlay(df):
    names, rows = _rows(df.select(
        F.locate("l", "s"), F.locate("l", "s", 4), F.position(F.lit("l"), "s"),
        F.translate("s", "lo", "x"), F.repeat("s", 2), F.repeat("s", F.lit(-1)),
        F.overlay("s", F.lit("XY"), 2), F.overlay("s", F.lit("XY"), 2, 0)))
    assert names == ["locate(l, s, 1)", "locate(l, s, 4)", "position(l, s, 1)",
                     "translate(s, lo, x)", "repeat(s, 2)", "repeat(s, -1)",
                     "overlay(s, XY, 2, -1)", "overlay(s, XY, 2, 0)"]
    assert rows == [(3, 4, 3, "Hexx", "HelloHello", "", "HXYlo", "HXYello"), (None,) * 8,
                    (0, 0, 0, "ab,cd", "ab,cdab,cd", "", "aXYcd", "aXYb,cd"),
                    (0, 0, 0, "", "", "", "XY", "XY")]
    assert _one(df, F.locate("", "s"), F.locate("l", "s", 0),
                F.translate(F.lit("abcabc"), "abc", "xy"),
                F.overlay(F.lit("Spark SQL"), F.lit("_"), F.lit(6)),
                F.overlay(F.lit("Spark SQL"), F.lit("ANSI "), F.lit(7), F.lit(0))) == \
        (1, 0, "xyxy", "Spark_SQL", "Spark ANSI SQL")


def test_characters_codecs_and_lengths(df):
    names, rows = _rows(df.select(
        F.ascii("s"), F.char(F.lit(65)), F.chr(F.lit(321)), F.char(F.lit(-1)),
        F.unbase64(F.lit("SGVsbG8=")), F.encode("s", "UTF-8"),
        F.decode(F.encode("s", "UTF-16"), "UTF-16"), F.octet_length("s"), F.bit_length("s")))
    assert names == ["ascii(s)", "char(65)", "chr(321)", "char(-1)", "unbase64(SGVsbG8=)",
                     "encode(s, UTF-8)", "decode(encode(s, UTF-16), UTF-16)", "octet_length(s)",
                     "bit_length(s)"]
    assert rows == [(72, "A", "A", "", b"Hello", b"Hello", "Hello", 5, 40),
                    (None, "A", "A", "", b"Hello", None, None, None, None),
                    (97, "A", "A", "", b"Hello", b"ab,cd", "ab,cd", 5, 40),
                    (0, "A", "A", "", b"Hello", b"", "", 0, 0)]
    assert _one(df, F.chr(F.lit(255)), F.unbase64(F.lit("SGVsbG8")), F.unbase64(F.lit("@@")),
                F.octet_length(F.lit("é"))) == ("ÿ", b"Hello", b"", 2)


def test_decode_of_malformed_bytes_and_unknown_charsets_raise(df):
    with pytest.raises(SparkRuntimeException, match=r"\[MALFORMED_CHARACTER_CODING\]"):
        df.select(F.decode(F.lit(b"\xff"), "UTF-8")).collect()
    with pytest.raises(AnalysisException, match=r"INVALID_PARAMETER_VALUE.CHARSET"):
        df.select(F.encode("s", "nope")).collect()


def test_formatting_like_java(df):
    names, rows = _rows(df.select(
        F.format_number("x", 2), F.format_number(F.lit(1234567.891), 0),
        F.format_string("%s-%d", "s", "i"), F.printf(F.lit("%s:%05.2f"), "s", "x")))
    assert names == ["format_number(x, 2)", "format_number(1234567.891, 0)",
                     "format_string(%s-%d, s, i)", "printf(%s:%05.2f, s, x)"]
    assert rows == [("0.50", "1,234,568", "Hello-3", "Hello:00.50"),
                    ("-1.00", "1,234,568", "null-null", "null:-1.00"),
                    (None, "1,234,568", "ab,cd--4", "ab,cd:   nu"),
                    ("2.00", "1,234,568", "-0", ":02.00")]
    assert _one(df, F.printf(F.lit("%d%%"), F.lit(5)),
                F.format_string("%5s|%-5s|", F.lit("a"), F.lit("b")),
                F.format_string("%x %o %e %b %c", F.lit(255), F.lit(8), F.lit(1234.5),
                                F.lit(True), F.lit(65))) == \
        ("5%", "    a|b    |", "ff 10 1.234500e+03 true A")


def test_java_format_renders_null_with_the_conversions_width_and_precision():
    assert java_format("%s|%5.2s|%-6s|", [None, None, 1.0]) == "null|   nu|1.0   |"


def test_soundex_levenshtein_and_masks(df):
    names, rows = _rows(df.select(
        F.soundex("s"), F.levenshtein("s", F.lit("Hallo")), F.levenshtein("s", F.lit("Hallo"), 1),
        F.mask("s"), F.mask("s", F.lit("Y"), F.lit("y"), F.lit("9"), F.lit("*"))))
    assert names == ["soundex(s)", "levenshtein(s, Hallo)", "levenshtein(s, Hallo, 1)",
                     "mask(s, X, x, n, NULL)", "mask(s, Y, y, 9, *)"]
    assert rows == [("H400", 1, 1, "Xxxxx", "Yyyyy"), (None,) * 5,
                    ("A123", 5, -1, "xx,xx", "yy*yy"), ("", 5, -1, "", "")]
    assert [soundex(w) for w in ("Robert", "Tymczak", "1abc", "", "Ashcraft", "Pfister")] == \
        ["R163", "T522", "1abc", "", "A261", "P236"]


def test_split_part_find_in_set_elt_btrim_quote(df):
    names, rows = _rows(df.select(
        F.split_part("s", F.lit(","), F.lit(2)), F.split_part("s", F.lit(","), F.lit(-1)),
        F.find_in_set(F.lit("cd"), "s"), F.elt(F.lit(2), F.lit("a"), F.lit("b")),
        F.btrim(F.lit("  a ")), F.btrim(F.lit("xxaxx"), F.lit("x")), F.quote("s")))
    assert names == ["split_part(s, ,, 2)", "split_part(s, ,, -1)", "find_in_set(cd, s)",
                     "elt(2, a, b)", "btrim(  a )", "btrim(xxaxx, x)", "quote(s)"]
    assert rows == [("", "Hello", 0, "b", "a", "a", "'Hello'"),
                    (None, None, None, "b", "a", "a", None),
                    ("cd", "cd", 2, "b", "a", "a", "'ab,cd'"),
                    ("", "", 0, "b", "a", "a", "''")]
    assert _one(df, F.split_part(F.lit("abc"), F.lit(""), F.lit(1)),
                F.split_part(F.lit("abc"), F.lit(""), F.lit(2)), F.quote(F.lit("it's"))) == \
        ("abc", "", "'it\\'s'")


def test_index_errors_follow_ansi(spark, df):
    with pytest.raises(SparkRuntimeException, match=r"\[INVALID_INDEX_OF_ZERO\]"):
        df.select(F.split_part("s", F.lit(","), F.lit(0))).collect()
    with pytest.raises(SparkRuntimeException, match=r"\[INVALID_ARRAY_INDEX\] The index 3"):
        df.select(F.elt(F.lit(3), F.lit("a"), F.lit("b"))).collect()
    spark.conf.set("spark.sql.ansi.enabled", "false")
    assert _one(df, F.elt(F.lit(3), F.lit("a"), F.lit("b"))) == (None,)


def test_urls(df):
    parts = ["HOST", "PATH", "QUERY", "REF", "PROTOCOL", "FILE", "AUTHORITY", "USERINFO"]
    got = _one(df, *(F.parse_url(F.lit(URL), F.lit(p)) for p in parts),
               F.parse_url(F.lit(URL), F.lit("QUERY"), F.lit("k")),
               F.url_encode(F.lit("a b&c")), F.url_decode(F.lit("a+b%26c")))
    assert got == ("host", "/p/a", "k=v&q=1", "f", "http", "/p/a?k=v&q=1", "u@host:8", "u", "v",
                   "a+b%26c", "a b&c")
    with pytest.raises(SparkRuntimeException, match=r"\[CANNOT_DECODE_URL\].*%zz"):
        df.select(F.url_decode(F.lit("%zz"))).collect()


def test_regular_expression_extraction(df):
    names, rows = _rows(df.select(
        F.regexp_count("s", F.lit("l")), F.regexp_substr("s", F.lit("l+")),
        F.regexp_instr("s", F.lit("l+")), F.regexp_extract_all(F.lit("a1b22"), F.lit(r"\d+"), 0),
        F.regexp_extract_all(F.lit("a1b22"), F.lit(r"(\d)(\d)?"), 2)))
    assert names == ["regexp_count(s, l)", "regexp_substr(s, l+)", "regexp_instr(s, l+, 0)",
                     "regexp_extract_all(a1b22, \\d+, 0)",
                     "regexp_extract_all(a1b22, (\\d)(\\d)?, 2)"]
    found = (["1", "22"], ["", "2"])
    assert rows == [(2, "ll", 3, *found), (None, None, None, *found), (0, None, 0, *found),
                    (0, None, 0, *found)]
    with pytest.raises(SparkRuntimeException, match=r"REGEX_GROUP_INDEX.*between 0 and 0"):
        df.select(F.regexp_extract_all(F.lit("a1"), F.lit(r"\d+"))).collect()


def test_sql_strings_reach_the_same_functions(spark, df):
    df.createOrReplaceTempView("t")
    names, rows = _rows(spark.sql(
        "SELECT like(s, 'H%'), rlike(s, 'l+'), regexp(s, 'l'), ilike(s, 'h%'), "
        "startswith(s, 'He'), left(s, 2), locate('l', s), repeat(s, 2), chr(65), "
        "format_number(x, 2), format_string('%s', s), mask(s), split_part(s, ',', 2), "
        "elt(1, 'a', 'b'), quote(s) FROM t"))
    assert names == ["s LIKE H%", "RLIKE(s, l+)", "REGEXP(s, l)", "ilike(s, h%)",
                     "startswith(s, He)", "left(s, 2)", "locate(l, s, 1)", "repeat(s, 2)",
                     "chr(65)", "format_number(x, 2)", "format_string(%s, s)",
                     "mask(s, X, x, n, NULL)", "split_part(s, ,, 2)", "elt(1, a, b)",
                     "quote(s)"]
    assert rows[0] == (True, True, True, True, True, "He", 3, "HelloHello", "A", "0.50",
                       "Hello", "Xxxxx", "", "a", "'Hello'")
    assert rows[1] == (None,) * 8 + ("A", "-1.00", "null", None, None, "a", None)


def test_string_functions_in_a_streaming_query(spark):
    events = MemoryStream("s STRING", spark)
    out = events.toDF().select(
        F.split_part("s", F.lit(","), F.lit(2)).alias("p"), F.soundex("s").alias("sx"),
        F.format_string("%s!", "s").alias("f"), F.regexp_count("s", F.lit(",")).alias("c"))
    query = out.writeStream.format("memory").queryName("texts").start()
    try:
        events.addData([("Robert,x",), (None,)])
        query.processAllAvailable(30)
        events.addData([("a,b,c",)])
        query.processAllAvailable(30)
    finally:
        query.stop()
    got = [tuple(r) for r in spark.sql("SELECT * FROM texts").collect()]
    assert sorted(got, key=str) == sorted([("x", "R163", "Robert,x!", 1),
                                           (None, None, "null!", None),
                                           ("b", "A120", "a,b,c!", 2)], key=str)


def test_replace_substr_and_aliases(df):
    names, rows = _rows(df.select(
        F.replace("s", F.lit("l")), F.replace("s", F.lit("l"), F.lit("L")), F.substr("s", F.lit(2)),
        F.substr("s", F.lit(2), F.lit(2)), F.char_length("s"), F.character_length("s"),
        F.lcase("s"), F.ucase("s"), F.ceiling("x")))
    assert names == ["replace(s, l, )", "replace(s, l, L)", "substr(s, 2, 2147483647)",
                     "substr(s, 2, 2)", "char_length(s)", "character_length(s)", "lcase(s)",
                     "ucase(s)", "ceiling(x)"]
    assert rows == [("Heo", "HeLLo", "ello", "el", 5, 5, "hello", "HELLO", 1),
                    (None, None, None, None, None, None, None, None, -1),
                    ("ab,cd", "ab,cd", "b,cd", "b,", 5, 5, "ab,cd", "AB,CD", None),
                    ("", "", "", "", 0, 0, "", "", 2)]


def test_utf8_checks(df):
    names, rows = _rows(df.select(
        F.is_valid_utf8(F.lit(b"\xff")), F.make_valid_utf8(F.lit(b"a\xffb")),
        F.try_validate_utf8(F.lit(b"\xff")), F.validate_utf8(F.lit("ok")), F.is_valid_utf8("s")))
    assert names[3:] == ["validate_utf8(ok)", "is_valid_utf8(s)"]
    assert rows == [(False, "a\ufffdb", None, "ok", True), (False, "a\ufffdb", None, "ok", None),
                    (False, "a\ufffdb", None, "ok", True), (False, "a\ufffdb", None, "ok", True)]
    with pytest.raises(Exception, match=r"\[INVALID_UTF8_STRING\].*: \\xFF\."):
        df.select(F.validate_utf8(F.lit(b"\xff"))).collect()


def test_binary_text_conversions(df):
    assert _one(df, F.to_binary(F.lit("abc"), F.lit("utf-8")), F.to_binary(F.lit("616263")),
                F.to_binary(F.lit("YWJj"), F.lit("base64")),
                F.try_to_binary(F.lit("zz"), F.lit("hex")),
                F.to_base32(F.lit("abc")), F.from_base32(F.lit("MFRGG==="))) == \
        (b"abc", b"abc", b"abc", None, "MFRGG===", b"abc")
    with pytest.raises(Exception, match=r"\[CONVERSION_INVALID_INPUT\] The value 'zz' \('HEX'\)"):
        df.select(F.to_binary(F.lit("zz"), F.lit("hex"))).collect()


def test_jaro_winkler_similarity(df):
    names, rows = _rows(df.select(F.jaro_winkler_similarity("s", F.lit("Hallo")),
                                  F.jaro_winkler_similarity(F.lit("MARTHA"), F.lit("MARHTA"))))
    assert names == ["jaro_winkler_similarity(s, Hallo)",
                     "jaro_winkler_similarity(MARTHA, MARHTA)"]
    assert rows == [(0.88, 0.9611111111111111), (None, 0.9611111111111111),
                    (0.4666666666666666, 0.9611111111111111), (0.0, 0.9611111111111111)]


def test_try_variants_of_url_functions(df):
    assert _one(df, F.try_url_decode(F.lit("%zz")),
                F.try_parse_url(F.lit("http://[bad"), F.lit("HOST"))) == (None, None)
    with pytest.raises(Exception, match=r"\[INVALID_URL\] The url is invalid: http://\[bad"):
        df.select(F.parse_url(F.lit("http://[bad"), F.lit("HOST"))).collect()


def test_sql_position_in_syntax(spark, df):
    df.createOrReplaceTempView("t")
    names, rows = _rows(spark.sql("SELECT position('l' IN s), position('l', s, 4) FROM t"))
    assert names == ["locate(l, s, 1)", "position(l, s, 4)"]
    assert rows == [(3, 4), (None, None), (0, 0), (0, 0)]


def test_numbers_are_cast_to_string_as_spark_does(df):
    assert _one(df, F.left(F.lit(12345), F.lit(2)), F.repeat(F.lit(1.5), F.lit(2)),
                F.like(F.lit(123), F.lit("1%")), F.rlike(F.lit(123), F.lit("2")),
                F.split_part(F.lit(1.5), F.lit("."), F.lit(1)), F.replace(F.lit(1212), F.lit("1")),
                F.locate("1", F.lit(212)), F.ascii(F.lit(5)), F.overlay(F.lit(123), F.lit(9), 2),
                F.levenshtein(F.lit(12), F.lit(13))) == \
        ("12", "1.51.5", True, True, "1", "22", 2, 53, "193", 1)


def test_parse_url_without_ansi_gives_null_for_an_invalid_url(spark, df):
    spark.conf.set("spark.sql.ansi.enabled", "false")
    assert _one(df, F.parse_url(F.lit("http://[bad"), F.lit("HOST"))) == (None,)
    with pytest.raises(IllegalArgumentException, match=r"\[CANNOT_DECODE_URL\]"):
        df.select(F.url_decode(F.lit("%zz"))).collect()


def test_to_number_reads_sparks_number_formats(df):
    names, rows = _rows(df.limit(1).select(
        F.to_number(F.lit("-$12,345.67"), F.lit("S$999,099.99")),
        F.to_number(F.lit("$345"), F.lit("S$999,099.99")),
        F.to_number(F.lit("<123>"), F.lit("999PR")),
        F.to_number(F.lit("12.5-"), F.lit("99.9MI")), F.to_number(F.lit(" 12 "), F.lit("999")),
        F.try_to_number(F.lit("$45"), F.lit("S$999,099.99")),
        F.to_number(F.lit("1,234"), F.lit("9G999"))))
    assert names[0] == "to_number(-$12,345.67, S$999,099.99)"
    assert rows == [(Decimal("-12345.67"), Decimal("345.00"), Decimal("-123"), Decimal("-12.5"),
                     Decimal("12"), None, Decimal("1234"))]
    typed = df.select(F.to_number(F.lit("1.5"), F.lit("9D9")))
    assert typed.schema.fields[0].dataType.simpleString() == "decimal(2,1)"
    with pytest.raises(IllegalArgumentException, match=r"MISMATCH_INPUT.*\$45 does not match"):
        df.select(F.to_number(F.lit("$45"), F.lit("S$999,099.99"))).collect()
    with pytest.raises(AnalysisException, match=r"UNEXPECTED_TOKEN.*'X99'"):
        df.select(F.to_number(F.lit("12"), F.lit("x99"))).collect()


def test_to_char_writes_sparks_number_formats(df):
    cases = [(454, "999", "454"), (454.0, "000D00", "454.00"), (12454, "99G999", "12,454"),
             (78.12, "$99.99", "$78.12"), (-12454.8, "99G999D9S", "12,454.8-"),
             (-12454.8, "99G999D9MI", "12,454.8-"), (-12454.8, "99G999D9PR", "<12,454.8>"),
             (12454.8, "99G999D9PR", "12,454.8  "), (0.5, "99.99", " 0.50"), (-5, "S999", "  -5"),
             (5, "S999", "  +5"), (1234567, "9,999", "# ###"), (12, "9,999", "   12"),
             (0, "999", "   "), (-0.5, "9.9", "0.5"), (Decimal("1.50"), "9.999", "1.500")]
    got = _one(df, *(F.to_char(F.lit(v), F.lit(f)) for v, f, _ in cases))
    assert got == tuple(want for *_, want in cases)
    assert _one(df, F.to_char(F.lit(b"abc"), F.lit("hex")),
                F.to_char(F.lit(b"abc"), F.lit("base64")),
                F.to_varchar(F.lit(3), F.lit("0000"))) == ("616263", "YWJj", "0003")
    assert df.select(F.to_varchar(F.lit(3), F.lit("0000"))).columns == ["to_char(3, 0000)"]


def test_edge_values_found_by_comparing_with_pyspark(df):
    """Cases where a first version differed from PySpark 4.3 on random inputs."""
    assert _one(df, F.jaro_winkler_similarity(F.lit(",yy+"), F.lit(",ca")),
                F.format_string("%.2f|%10.2f", F.lit(49.125), F.lit(-93.625)),
                F.unbase64(F.lit("a=b"))) == (0.575, "49.13|    -93.63", b"i")
    assert _one(df, F.soundex(F.lit("ybßcÉzß h")), F.soundex(F.lit("dEHAsÉztx")),
                F.soundex(F.lit("ßHppx")),
                F.printf(F.lit("%x|%s"), F.lit(-10), F.lit(-2269.7293658813096).cast("float")),
                F.conv(F.lit(" 65b"), 16, 10)) == \
        ("Y122", "D223", "ßHppx", "fffffff6|-2269.7292", "1627")
    with pytest.raises(IllegalArgumentException, match="Last unit does not have enough"):
        df.select(F.unbase64(F.lit("abcde"))).collect()


def test_doubles_become_strings_as_java_prints_them(df):
    """Spark casts a double to string with Java's Double.toString, so string functions
    of doubles see 1.0E20, not 1e+20."""
    assert _one(df, F.lit(1e20).cast("string"), F.lit(1e-5).cast("string"),
                F.lit(123456789.0).cast("string"), F.lit(float("nan")).cast("string"),
                F.lit(float("-inf")).cast("string"), F.right(F.lit(1e20), F.lit(3)),
                F.lit(1.5).cast("float").cast("string")) == \
        ("1.0E20", "1.0E-5", "1.23456789E8", "NaN", "-Infinity", "E20", "1.5")


def test_concat_prints_numbers_as_spark_does(df):
    assert _one(df, F.concat(F.lit(1e20), F.lit("x")), F.concat(F.lit(3), F.lit(True)),
                F.concat_ws("-", F.lit(1e20), F.lit(3), F.lit(None).cast("string"))) == \
        ("1.0E20x", "3true", "1.0E20-3")


def test_sentences_split_as_javas_break_iterator(df):
    texts = ["Hi there! Good morning.", "I don't know, e.g. 3.5 apples? Yes...  ok",
             'Mr. Smith went to Washington. He said: "Hi!" Then left.',
             "a_b c, 1,000 dollars. _x y", "Wait.. what", "It's 3 p.m. now. OK", ""]
    got = _one(df, *(F.sentences(F.lit(t)) for t in texts))
    assert got == (
        [["Hi", "there"], ["Good", "morning"]],
        [["I", "don't", "know", "e.g", "3.5", "apples"], ["Yes"], ["ok"]],
        [["Mr"], ["Smith", "went", "to", "Washington"], ["He", "said", "Hi"], ["Then", "left"]],
        [["a_b", "c", "1,000", "dollars"], ["x", "y"]], [["Wait", "what"]],
        [["It's", "3", "p.m", "now"], ["OK"]], [])
    assert df.select(F.sentences("s")).columns == ["sentences(s, , )"]

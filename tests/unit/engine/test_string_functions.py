"""instr, lpad/rpad and initcap as PySpark 4.3 computes them (every expected value below
was read off PySpark 4.3, local[1], ANSI off)."""

from __future__ import annotations


def _row(spark, sql):
    return tuple(spark.sql(sql).collect()[0])


def test_instr_is_null_for_null_and_counts_characters_not_bytes(spark):
    assert _row(spark, "SELECT instr(NULL, 'l'), instr('héllo', 'l'), instr('abc', ''), "
                       "instr('abc', 'z'), instr(CAST(NULL AS STRING), '')") == (
        None, 3, 1, 0, None)


def test_instr_of_a_column_with_nulls(spark):
    df = spark.createDataFrame([("hello",), (None,), ("ÄÖü l",)], "s string")
    assert [r[0] for r in df.selectExpr("instr(s, 'l')").collect()] == [3, None, 5]


def test_lpad_and_rpad_cut_a_longer_string_to_the_length(spark):
    assert _row(spark, "SELECT lpad('hello world', 6, '*'), rpad('hello world', 6, '*'), "
                       "lpad('abc', 2), rpad('ab', 4)") == ("hello ", "hello ", "ab", "ab  ")


def test_lpad_and_rpad_repeat_a_longer_pad_and_handle_empty_and_negative(spark):
    assert _row(spark, "SELECT lpad('hi', 7, 'ab'), rpad('hi', 7, 'ab'), lpad('hi', 5, ''), "
                       "lpad('hi', -1, 'x'), rpad('hi', 0, 'x'), lpad(NULL, 3, 'x')") == (
        "ababahi", "hiababa", "hi", "", "", None)


def test_initcap_splits_words_on_spaces_only(spark):
    assert _row(spark, "SELECT initcap('1e3'), initcap('hello-world foo_bar'), "
                       "initcap('  two  spaces'), initcap('hELLO\twORLD')") == (
        "1e3", "Hello-world Foo_bar", "  Two  Spaces", "Hello\tworld")


def test_initcap_title_cases_the_first_letter_as_icu(spark):
    assert _row(spark, "SELECT initcap('ßx straße ÄÖü'), initcap('ǆa'), initcap('ﬁx'), "
                       "initcap(NULL)") == ("Ssx Straße Äöü", "ǅa", "Fix", None)


def test_a_doubled_quote_in_a_sql_literal_is_one_quote(spark):
    assert _row(spark, """SELECT 'a''b', 'yyyy-MM-dd''T''HH', 'a' 'b', "x""y", 'q"', """
                       """'x''' """) == ("a'b", "yyyy-MM-dd'T'HH", "ab", 'x"y', 'q"', "x'")

"""PySpark's math and miscellaneous functions: output names, values, NULLs and ANSI
errors as PySpark 4.3 gives them (each expected value below was read off PySpark 4.3;
transcendental results are compared to 1e-15, as the JVM's libm may differ in the last
bit)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from unbounded.errors import (
    ArithmeticException,
    IllegalArgumentException,
    NumberFormatException,
    SparkRuntimeException,
    UnsupportedOperationException,
)
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

NaN = float("nan")


@pytest.fixture
def df(spark):
    rows = [(0.5, 3, "Hello", -7), (-1.0, None, None, 12), (None, -4, "ab,cd", None),
            (2.0, 0, "", 0)]
    return spark.createDataFrame(rows, "x double, i int, s string, n long")


def _rows(frame):
    return frame.columns, [tuple(r) for r in frame.collect()]


def _close(got, want):
    """Rows equal, floats to 1e-15 (NaN equal to NaN)."""
    assert len(got) == len(want)
    for g_row, w_row in zip(got, want, strict=True):
        for g, w in zip(g_row, w_row, strict=True):
            if isinstance(w, float) and w != w:
                assert g != g
            elif isinstance(w, float):
                assert g == pytest.approx(w, rel=1e-15, abs=1e-300)
            else:
                assert g == w


def test_inverse_trigonometry_is_named_in_upper_case_and_nan_outside_the_domain(df):
    names, rows = _rows(df.select(F.acos("x"), F.asin("x"), F.atan("x"), F.atan2("x", "i"),
                                  F.acosh("x"), F.asinh("x"), F.atanh("x")))
    assert names == ["ACOS(x)", "ASIN(x)", "ATAN(x)", "ATAN2(x, i)", "ACOSH(x)", "ASINH(x)",
                     "ATANH(x)"]
    _close(rows, [
        (1.0471975511965979, 0.5235987755982989, 0.4636476090008061, 0.16514867741462683,
         NaN, 0.48121182505960347, 0.5493061443340548),
        (3.141592653589793, -1.5707963267948966, -0.7853981633974483, None, NaN,
         -0.881373587019543, float("-inf")),
        (None,) * 7,
        (NaN, NaN, 1.1071487177940904, 1.5707963267948966, 1.3169578969248166,
         1.4436354751788103, NaN),
    ])


def test_trigonometry_and_reciprocals(df):
    names, rows = _rows(df.select(F.cos("x"), F.cosh("x"), F.sin("x"), F.tanh("x"),
                                  F.cot("x"), F.csc("x"), F.sec("x")))
    assert names == ["COS(x)", "COSH(x)", "SIN(x)", "TANH(x)", "COT(x)", "CSC(x)", "SEC(x)"]
    _close(rows, [
        (0.8775825618903728, 1.1276259652063807, 0.479425538604203, 0.46211715726000974,
         1.830487721712452, 2.085829642933488, 1.139493927324549),
        (0.5403023058681398, 1.543080634815244, -0.8414709848078965, -0.7615941559557649,
         -0.6420926159343306, -1.1883951057781212, 1.8508157176809255),
        (None,) * 7,
        (-0.4161468365471424, 3.7621956910836314, 0.9092974268256817, 0.9640275800758169,
         -0.45765755436028577, 1.0997501702946164, -2.402997961722381),
    ])
    _, zero = _rows(df.limit(1).select(F.cot(F.lit(0.0)), F.csc(F.lit(0.0)), F.tan("x")))
    _close(zero, [(float("inf"), float("inf"), 0.5463024898437905)])


def test_logarithms_are_null_outside_their_domain(df):
    names, rows = _rows(df.select(F.log10("x"), F.log2("x"), F.log1p("x"), F.ln("x"),
                                  F.expm1("x"), F.log(F.lit(2.0), "x")))
    assert names == ["LOG10(x)", "LOG2(x)", "LOG1P(x)", "ln(x)", "EXPM1(x)", "LOG(2.0, x)"]
    _close(rows, [
        (-0.3010299956639812, -1.0, 0.4054651081081644, -0.6931471805599453,
         0.6487212707001282, -1.0),
        (None, None, None, None, -0.6321205588285577, None),
        (None,) * 6,
        (0.3010299956639812, 1.0, 1.0986122886681096, 0.6931471805599453, 6.38905609893065,
         1.0),
    ])
    _, edges = _rows(df.limit(1).select(F.log10(F.lit(0.0)), F.log2(F.lit(-1)),
                                        F.log1p(F.lit(-1.0)), F.ln(F.lit(0))))
    assert edges == [(None, None, None, None)]


def test_powers_roots_angles_and_constants(df):
    names, rows = _rows(df.select(F.pow("x", "i"), F.power("i", 2), F.hypot("x", "i"),
                                  F.cbrt("i"), F.degrees("x"), F.toRadians("x"), F.e(),
                                  F.pi() * 2))
    assert names == ["POWER(x, i)", "POWER(i, 2)", "HYPOT(x, i)", "CBRT(i)", "DEGREES(x)",
                     "RADIANS(x)", "E()", "(PI() * 2)"]
    _close(rows, [
        (0.125, 9.0, 3.0413812651491097, 1.4422495703074083, 28.64788975654116,
         0.008726646259971648, 2.718281828459045, 6.283185307179586),
        (None, None, None, None, -57.29577951308232, -0.017453292519943295,
         2.718281828459045, 6.283185307179586),
        (None, 16.0, None, -1.5874010519681996, None, None, 2.718281828459045,
         6.283185307179586),
        (1.0, 0.0, 2.0, 0.0, 114.59155902616465, 0.03490658503988659, 2.718281828459045,
         6.283185307179586),
    ])


def test_rounding_signs_and_factorials(df):
    names, rows = _rows(df.select(F.rint("x"), F.bround("x"), F.bround("x", 1), F.sign("x"),
                                  F.signum("i"), F.pmod("i", F.lit(3)), F.factorial("i")))
    assert names == ["rint(x)", "bround(x, 0)", "bround(x, 1)", "sign(x)", "SIGNUM(i)",
                     "pmod(i, 3)", "factorial(i)"]
    assert rows == [(0.0, 0.0, 0.5, 1.0, 1.0, 0, 6), (-1.0, -1.0, -1.0, -1.0, None, None, None),
                    (None, None, None, None, -1.0, 2, None), (2.0, 2.0, 2.0, 1.0, 0.0, 0, 1)]
    _, edges = _rows(df.limit(1).select(
        F.rint(F.lit(2.5)), F.bround(F.lit(-2.5)), F.bround(F.lit(25), -1),
        F.bround(F.lit(35), -1), F.pmod(F.lit(-7), F.lit(3)), F.pmod(F.lit(-7.5), F.lit(2)),
        F.factorial(F.lit(20)), F.factorial(F.lit(21)), F.factorial(F.lit(-1))))
    assert edges == [(2.0, -2.0, 20, 40, 2, 0.5, 2432902008176640000, None, None)]


def test_pmod_by_zero_raises_under_ansi_and_is_null_without(spark, df):
    with pytest.raises(ArithmeticException, match=r"\[REMAINDER_BY_ZERO\]"):
        df.select(F.pmod("i", F.lit(0))).collect()
    spark.conf.set("spark.sql.ansi.enabled", "false")
    assert [r[0] for r in df.select(F.pmod("i", F.lit(0))).collect()] == [None] * 4


def test_radix_conversions(df):
    names, rows = _rows(df.select(F.bin("i"), F.hex("i"), F.hex("s"), F.unhex(F.lit("414")),
                                  F.conv("s", 16, 10), F.conv("i", 10, -16)))
    assert names == ["bin(i)", "hex(i)", "hex(s)", "unhex(414)", "conv(s, 16, 10)",
                     "conv(i, 10, -16)"]
    minus_four = "1" * 62 + "00"
    assert rows == [("11", "3", "48656C6C6F", b"\x04\x14", "0", "3"),
                    (None, None, None, b"\x04\x14", None, None),
                    (minus_four, "FFFFFFFFFFFFFFFC", "61622C6364", b"\x04\x14", "171", "-4"),
                    ("0", "0", "", b"\x04\x14", None, "0")]
    _, edges = _rows(df.limit(1).select(
        F.conv(F.lit("-15"), 10, 16), F.conv(F.lit("-15"), 10, -16), F.conv(F.lit("zz"), 36, 10),
        F.unhex(F.lit("zz")), F.hex(F.lit(-1))))
    assert edges == [("FFFFFFFFFFFFFFF1", "-F", "1295", None, "FFFFFFFFFFFFFFFF")]


def test_conv_overflow_raises_under_ansi(df):
    with pytest.raises(ArithmeticException, match=r"Overflow in function conv\(\)"):
        df.select(F.conv(F.lit("ffffffffffffffffff"), 16, 10)).collect()


def test_signs_and_try_arithmetic(df):
    names, rows = _rows(df.select(F.negate("i"), F.negative("x"), F.positive("i"),
                                  F.try_add("i", "n"), F.try_subtract("i", "n"),
                                  F.try_multiply("i", "n"), F.try_divide("i", "n"),
                                  F.try_mod("i", "n")))
    assert names == ["negative(i)", "negative(x)", "(+ i)", "try_add(i, n)",
                     "try_subtract(i, n)", "try_multiply(i, n)", "try_divide(i, n)",
                     "try_mod(i, n)"]
    assert rows == [(-3, -0.5, 3, -4, 10, -21, -0.42857142857142855, 3),
                    (None, 1.0, None, None, None, None, None, None),
                    (4, None, -4, None, None, None, None, None),
                    (0, -2.0, 0, 0, 0, 0, None, None)]


def test_try_arithmetic_is_null_where_the_operator_raises(df):
    _, rows = _rows(df.limit(1).select(
        F.try_add(F.lit(2147483647), F.lit(1)),
        F.try_multiply(F.lit(9223372036854775807), F.lit(2)),
        F.try_divide(F.lit(1), F.lit(0)), F.try_subtract(F.lit(-2147483648), F.lit(1)),
        F.try_mod(F.lit(7), F.lit(0)), F.try_mod(F.lit(-7), F.lit(3)), F.try_add(F.lit(1.5), 2)))
    assert rows == [(None, None, None, None, None, -1, 3.5)]
    with pytest.raises(ArithmeticException, match=r"\[ARITHMETIC_OVERFLOW\]"):
        df.select(F.negative(F.lit(-2147483648))).collect()


def test_buckets_and_bits(df):
    names, rows = _rows(df.select(
        F.width_bucket("x", F.lit(0), F.lit(10), F.lit(5)), F.shiftleft("i", 1),
        F.shiftright("i", 1), F.shiftrightunsigned("i", 1), F.bitwise_not("i"),
        F.bit_count("i"), F.bit_get("i", F.lit(1))))
    assert names == ["width_bucket(x, 0, 10, 5)", "shiftleft(i, 1)", "shiftright(i, 1)",
                     "shiftrightunsigned(i, 1)", "~i", "bit_count(i)", "bit_get(i, 1)"]
    assert rows == [(1, 6, 1, 1, -4, 2, 1), (0, None, None, None, None, None, None),
                    (None, -8, -2, 2147483646, 3, 62, 0), (2, 0, 0, 0, -1, 0, 0)]
    _, edges = _rows(df.limit(1).select(
        F.width_bucket(F.lit(5.3), F.lit(0.2), F.lit(10.6), F.lit(5)),
        F.width_bucket(F.lit(11), F.lit(0), F.lit(10), F.lit(5)),
        F.width_bucket(F.lit(5), F.lit(10), F.lit(0), F.lit(5)),
        F.width_bucket(F.lit(5), F.lit(0), F.lit(10), F.lit(0)),
        F.shiftleft(F.lit(1), 33), F.shiftleft(F.lit(1).cast("long"), 33),
        F.shiftrightunsigned(F.lit(-8).cast("long"), 1), F.bit_get(F.lit(5), F.lit(2))))
    assert edges == [(3, 6, 3, None, 2, 8589934592, 9223372036854775804, 1)]


def test_bit_get_outside_the_type_raises(df):
    with pytest.raises(IllegalArgumentException, match=r"BIT_POSITION_RANGE.*32\), but got 40"):
        df.select(F.bit_get(F.lit(5), F.lit(40))).collect()


def test_nanvl_replaces_only_nan(df):
    _, rows = _rows(df.limit(1).select(
        F.nanvl(F.lit(NaN), F.lit(1.0)), F.nanvl(F.lit(NaN), F.lit(None)),
        F.nanvl(F.lit(None).cast("double"), F.lit(1.0)), F.nanvl("x", F.lit(1.0))))
    assert rows == [(1.0, None, None, 0.5)]


def test_sql_and_expr_strings_reach_the_same_functions(spark, df):
    df.createOrReplaceTempView("t")
    names, rows = _rows(spark.sql(
        "SELECT acos(x), atan2(x, i), power(2, 3), pmod(i, 3), positive(i), negative(i), "
        "e(), bin(i), conv('ff', 16, 10), try_divide(i, n), width_bucket(x, 0, 10, 5), "
        "shiftleft(i, 1), bit_count(i), nanvl(x, 1.0), degrees(x), typeof(i) FROM t"))
    assert names == ["ACOS(x)", "ATAN2(x, i)", "POWER(2, 3)", "pmod(i, 3)", "(+ i)",
                     "negative(i)", "E()", "bin(i)", "conv(ff, 16, 10)", "try_divide(i, n)",
                     "width_bucket(x, 0, 10, 5)", "shiftleft(i, 1)", "bit_count(i)",
                     "nanvl(x, 1.0)", "DEGREES(x)", "typeof(i)"]
    assert rows[2][3:] == (2, -4, 4, 2.718281828459045,
                           "1111111111111111111111111111111111111111111111111111111111111100",
                           "255", None, None, -8, 62, None, None, "int")
    assert df.select(F.expr("bround(x, 1)"), F.expr("hex(i)")).columns == \
        ["bround(x, 1)", "hex(i)"]


# ---- miscellaneous --------------------------------------------------------------------------
def test_null_helpers_and_typeof(df):
    names, rows = _rows(df.select(
        F.nvl2("i", F.lit("a"), F.lit("b")), F.equal_null("i", F.lit(3)),
        F.equal_null("i", F.lit(None)), F.isnotnull("i"), F.typeof("i"), F.typeof("s"),
        F.zeroifnull("i"), F.nullifzero("i")))
    assert names == ["nvl2(i, a, b)", "equal_null(i, 3)", "equal_null(i, NULL)",
                     "(i IS NOT NULL)", "typeof(i)", "typeof(s)", "zeroifnull(i)",
                     "nullifzero(i)"]
    assert rows == [("a", True, False, True, "int", "string", 3, 3),
                    ("b", False, True, False, "int", "string", 0, None),
                    ("a", False, False, True, "int", "string", -4, -4),
                    ("a", False, False, True, "int", "string", 0, None)]
    _, types = _rows(df.limit(1).select(
        F.typeof(F.array(F.lit(1))), F.typeof(F.lit(None)), F.typeof(F.current_timestamp()),
        F.typeof(F.create_map(F.lit("a"), F.lit(1)))))
    assert types == [("array<int>", "void", "timestamp", "map<string,int>")]


def test_xxhash64_is_sparks_bit_for_bit(df):
    names, rows = _rows(df.select(F.xxhash64("s"), F.xxhash64("i", "s"), F.xxhash64("x"),
                                  F.xxhash64("n"), F.sha("s")))
    assert names == ["xxhash64(s)", "xxhash64(i, s)", "xxhash64(x)", "xxhash64(n)", "sha(s)"]
    assert rows == [
        (6777584228807376986, 6047979410417505240, 3031145945194818975, -1663473129717591079,
         "f7ff9e8b7bb2e09b70935a5d785e0cc5d9d0abf0"),
        (42, 42, -8296228499959607521, 1303166580410243576, None),
        (7526414371297315139, 3860117314110434258, 42, 42,
         "ee6b96860646fa3fe66e6f99d83755dfb5fe3534"),
        (-7444071767201028348, -6955412699463271691, 8973626371093010265,
         -5252525462095825812, "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    ]
    _, long_inputs = _rows(df.limit(1).select(
        F.xxhash64(F.lit("a" * 40)),
        F.xxhash64(F.lit("The quick brown fox jumps over the lazy dog")),
        F.xxhash64(F.lit(1.5).cast("float")), F.xxhash64(F.lit(True)), F.xxhash64(F.lit(-0.0)),
        F.xxhash64(F.to_date(F.lit("2024-01-02")))))
    assert long_inputs == [(-8273737738657618755, -6152153990451020481, 6163473420726370430,
                            -6698625589789238999, -5252525462095825812, 2483697508354006915)]


def test_random_values_are_fixed_by_seed_partition_and_row(df):
    first = [tuple(r) for r in df.select(F.rand(42), F.randn(42), F.rand(7)).collect()]
    again = [tuple(r) for r in df.select(F.rand(42), F.randn(42), F.rand(7)).collect()]
    assert again == first
    assert all(0.0 <= r[0] < 1.0 for r in first)
    assert len({r[0] for r in first}) == 4
    assert [r[0] for r in first] != [r[2] for r in first]
    assert df.select(F.rand(42), F.randn(7)).columns == ["rand(42)", "randn(7)"]
    unseeded = F.rand()
    assert re.fullmatch(r"rand\(\d+\)", str(unseeded.expr.display_name()))
    assert df.select(unseeded).collect() == df.select(unseeded).collect()


def test_ids_partition_and_uuids(df):
    names, rows = _rows(df.select(F.monotonically_increasing_id(), F.spark_partition_id(),
                                  F.input_file_name(), F.uuid()))
    assert names == ["monotonically_increasing_id()", "SPARK_PARTITION_ID()",
                     "input_file_name()", "uuid()"]
    assert [r[:3] for r in rows] == [(0, 0, ""), (1, 0, ""), (2, 0, ""), (3, 0, "")]
    uuids = [r[3] for r in rows]
    assert len(set(uuids)) == 4
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                            u) for u in uuids)


def test_assert_true_and_raise_error(df):
    ok = df.select(F.assert_true(F.col("i") > -10, "bad").alias("a"))
    with pytest.raises(SparkRuntimeException, match=r"\[USER_RAISED_EXCEPTION\] bad"):
        ok.collect()  # i is NULL in one row: NULL is not true
    checked = df.select(F.assert_true(F.col("i") > 0))
    assert checked.columns == ["assert_true((i > 0), '(i > 0)' is not true!)"]
    with pytest.raises(SparkRuntimeException, match=r"'\(i > 0\)' is not true!"):
        checked.collect()
    assert df.filter("i > 0").select(F.assert_true(F.col("i") > 0)).collect()[0][0] is None
    raised = df.select(F.raise_error(F.lit("boom")))
    assert raised.columns == ["raise_error(USER_RAISED_EXCEPTION, map(errorMessage, boom))"]
    with pytest.raises(SparkRuntimeException, match=r"\[USER_RAISED_EXCEPTION\] boom"):
        raised.collect()
    assert df.filter("i > 100").select(F.raise_error(F.lit("boom"))).collect() == []


def test_math_functions_in_a_streaming_query(spark):
    events = MemoryStream("i INT, x DOUBLE", spark)
    out = events.toDF().select(
        F.pmod("i", F.lit(3)).alias("p"), F.bround("x", 1).alias("b"), F.hex("i").alias("h"),
        F.try_divide("i", F.lit(0)).alias("d"), F.xxhash64("i").alias("xx"),
        F.spark_partition_id().alias("pid"), F.rand(3).alias("r"))
    query = out.writeStream.format("memory").queryName("maths").start()
    try:
        events.addData([(-7, 2.25), (5, None)])
        query.processAllAvailable(30)
    finally:
        query.stop()
    got = [tuple(r) for r in spark.sql("SELECT p, b, h, d, xx, pid FROM maths").collect()]
    assert got == [(2, 2.2, "FFFFFFFFFFFFFFF9", None, 4987848727247274714, 0),
                   (2, None, "5", None, 504019808641096632, 0)]
    stream_rand = [r[0] for r in spark.sql("SELECT r FROM maths").collect()]
    batch = spark.createDataFrame([(-7, 2.25), (5, None)], "i int, x double")
    assert stream_rand == [r[0] for r in batch.select(F.rand(3)).collect()]


def test_session_facts(df):
    import getpass

    names, rows = _rows(df.limit(1).select(
        F.current_catalog(), F.current_database(), F.current_schema(), F.current_user(),
        F.user(), F.session_user(), F.input_file_block_length(), F.input_file_block_start()))
    assert names == ["current_catalog()", "current_schema()", "current_schema()",
                     "current_user()", "user()", "session_user()", "input_file_block_length()",
                     "input_file_block_start()"]
    me = getpass.getuser()
    assert rows == [("spark_catalog", "default", "default", me, me, me, -1, -1)]


def test_uniform_and_randstr_keep_sparks_types(df):
    frame = df.select(F.uniform(F.lit(1), F.lit(10), F.lit(0)),
                      F.uniform(F.lit(1.0), F.lit(10), F.lit(0)), F.randstr(F.lit(5), F.lit(0)))
    assert frame.columns == ["uniform(1, 10, 0)", "uniform(1.0, 10, 0)", "randstr(5, 0)"]
    assert frame.schema.simpleString() == \
        "struct<uniform(1, 10, 0):int,uniform(1.0, 10, 0):double,randstr(5, 0):string>"
    rows = [tuple(r) for r in frame.collect()]
    assert rows == [tuple(r) for r in frame.collect()]
    assert all(1 <= i < 10 and 1.0 <= f < 10.0 and int(f) == i for i, f, _ in rows)
    assert all(re.fullmatch(r"[0-9a-zA-Z]{5}", s) for _, _, s in rows)


def test_strings_are_cast_to_double_as_spark_does(df):
    names, rows = _rows(df.limit(1).select(
        F.acos(F.lit("0.5")), F.atan2(F.lit("1"), F.lit(1)), F.bround(F.lit("2.5")),
        F.cbrt(F.lit("8")), F.log10(F.lit("100")), F.hypot(F.lit("3"), F.lit(4))))
    assert names == ["ACOS(0.5)", "ATAN2(1, 1)", "bround(2.5, 0)", "CBRT(8)", "LOG10(100)",
                     "HYPOT(3, 4)"]
    assert rows == [(1.0471975511965979, 0.7853981633974483, 2.0, 2.0, 2.0, 5.0)]
    with pytest.raises(NumberFormatException, match=r"\[CAST_INVALID_INPUT\] The value 'abc'"):
        df.select(F.acos(F.lit("abc"))).collect()


def test_without_ansi_overflows_and_bad_values_give_null_or_wrap(spark, df):
    spark.conf.set("spark.sql.ansi.enabled", "false")
    _, rows = _rows(df.limit(1).select(
        F.acos(F.lit("abc")), F.conv(F.lit("ffffffffffffffffff"), 16, 10),
        F.negative(F.lit(-2147483648)), F.pmod(F.lit(3), F.lit(0))))
    assert rows == [(None, "18446744073709551615", -2147483648, None)]


def test_decimals_keep_their_type_and_hash_as_in_spark(spark):
    rows = [(Decimal("12.35"),), (Decimal("-2.45"),), (None,)]
    dec = spark.createDataFrame(rows, "d decimal(10,2)")
    frame = dec.select(F.bround("d", 1), F.xxhash64("d"), F.sign("d"), F.format_number("d", 1))
    assert frame.schema.simpleString() == ("struct<bround(d, 1):decimal(10,1),xxhash64(d):bigint,"
                                           "sign(d):double,format_number(d, 1):string>")
    assert [tuple(r) for r in frame.collect()] == [
        (Decimal("12.4"), -5753788848973304900, 1.0, "12.4"),
        (Decimal("-2.4"), -1767403143242243012, -1.0, "-2.4"), (None, 42, None, None)]
    wide = dec.limit(1).select(
        F.xxhash64(F.lit(Decimal("-123456789012345678901.5")).cast("decimal(30,1)")),
        F.bround(F.lit(Decimal("125")).cast("decimal(5,0)"), -1))
    assert wide.schema.fields[1].dataType.simpleString() == "decimal(6,0)"
    assert tuple(wide.collect()[0]) == (-8511116344682871550, Decimal("120"))


def test_partition_functions_see_the_task_of_a_file_stream(spark, tmp_path, monkeypatch):
    import unbounded.sources.files as file_source

    monkeypatch.setattr(file_source, "_parallelism", lambda: 3)  # one task per file
    for k in range(3):
        (tmp_path / f"part{k}.json").write_text(f'{{"v": {k}}}\n{{"v": {k + 10}}}\n')
    stream = spark.readStream.schema("v long").json(str(tmp_path)).select(
        "v", F.spark_partition_id().alias("p"), F.input_file_name().alias("f"))
    query = stream.writeStream.format("memory").queryName("parts").start()
    try:
        query.processAllAvailable(30)
    finally:
        query.stop()
    rows = [tuple(r) for r in spark.sql("SELECT * FROM parts").collect()]
    assert sorted(v for v, *_ in rows) == [0, 1, 2, 10, 11, 12]
    assert {p for _, p, _ in rows} == {0, 1, 2}
    assert all(f == (tmp_path / f"part{v % 10}.json").as_uri() for v, _, f in rows)
    assert len({(p, f) for _, p, f in rows}) == 3  # a task per file


def test_monotonically_increasing_id_is_rejected_in_a_stream_as_spark_does(spark):
    events = MemoryStream("i INT", spark)
    ids = events.toDF().select(F.monotonically_increasing_id())
    with pytest.raises(UnsupportedOperationException,
                       match=r"monotonically_increasing_id\(\) is not supported with streaming"):
        ids.writeStream.format("memory").queryName("ids").start()


def test_cube_roots_round_as_the_jvm_does(df):
    """fdlibm's cbrt (the JVM's): libm and numpy differ in the last bit on these."""
    got = _one_row(df, F.cbrt(F.lit(90.377)), F.cbrt(F.lit(-14.151)), F.cbrt(F.lit(-4.198)),
                   F.cbrt(F.lit(8.0)), F.cbrt(F.lit(0.0)))
    assert got == (4.48765339854216, -2.4187763319316167, -1.6131725055779436, 2.0, 0.0)


def _one_row(df, *cols):
    return tuple(df.limit(1).select(*cols).collect()[0])


def test_edge_values_found_by_comparing_integer_functions_with_pyspark(spark):
    rows = [(-2147483648, 641, -0.0), (7, -8004885606950162879, 1e300)]
    frame = spark.createDataFrame(rows, "a int, b long, d double")
    got = [tuple(r) for r in frame.select(
        F.pmod("b", "a"), F.try_mod("b", "a"), F.bround("d", 3), F.typeof(F.col("a") + F.col("b")),
        F.format_number("d", 1)).collect()]
    assert got[0] == (641, 641, 0.0, "bigint", "-0.0")
    assert got[1][:4] == (3, -4, 1e300, "bigint")
    assert got[1][4] == "1" + ",000" * 100 + ".0"
    with pytest.raises(ArithmeticException, match=r"\[ARITHMETIC_OVERFLOW\] overflow"):
        frame.select(F.abs("a")).collect()
    assert _one_row(frame, F.format_number(F.lit(float("nan")), 2),
                    F.format_number(F.lit(float("inf")), 2),
                    F.format_string("%.3e|%g|%g|%e", F.lit(1e300), F.lit(1e300), F.lit(0.0),
                                    F.lit(float("nan")))) == \
        ("NaN", "∞", "1.000e+300|1.00000e+300|0.00000|NaN")


def test_uuids_differ_between_batches_of_a_stream(spark):
    events = MemoryStream("i INT", spark)
    query = events.toDF().select("i", F.uuid().alias("u")).writeStream.format("memory") \
        .queryName("uuids").start()
    try:
        events.addData([(1,), (2,)])
        query.processAllAvailable(30)
        events.addData([(3,), (4,)])
        query.processAllAvailable(30)
    finally:
        query.stop()
    uuids = [r[0] for r in spark.sql("SELECT u FROM uuids").collect()]
    assert len(uuids) == 4
    assert len(set(uuids)) == 4

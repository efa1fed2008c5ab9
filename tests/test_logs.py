"""The log reader: same tensors from every format, and readable errors for bad input.

References are independent of the code under test: CSV files are written with Python's csv
module and TFRecords from hand-built tf.train.Example protos.
"""

import csv
import gzip
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from core import log_diagnosis, log_files, log_schema, log_writers, logs, schema_inference
from core.errors import InputError

ROWS = [
    # impression_id, user_id, item_id, timestamp, click, dwell_time, position, category, score
    (11, "u1", "a1", 1767571200, 1, 31.5, 0, "news", 0.25),
    (12, "u1", "a2", 1767571210, 0, 0.0, 1, "sports", -1.5),
    (13, "42", "7", 1767657600, 1, 0.0, 2, "tech", 3.0),
    (14, "u2", "a1", 1767657601, 1, 1234.567, 0, "news", 0.0),
    (15, "u3", "a3", 1767744000, 0, 0.0, 3, "café, bar", 2.5),
]
HEADER = ["impression_id", "user_id", "item_id", "timestamp", "click", "dwell_time", "position",
          "category", "score"]


def write_csv(path, header=HEADER, rows=ROWS, opener=open, newline="\n"):
    with opener(path, "wt", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator=newline)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def example(values, header=HEADER, override=None):
    feature = {}
    for name, value in zip(header, values):
        value = (override or {}).get(name, value)
        if value is None:
            continue
        if isinstance(value, bool) or isinstance(value, int):
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        elif isinstance(value, float):
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        else:
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_tfrecord(path, records, compression=""):
    with tf.io.TFRecordWriter(str(path), tf.io.TFRecordOptions(compression_type=compression)) as w:
        for record in records:
            w.write(record)
    return str(path)


def read_all(pattern, **kwargs):
    """Reads a whole input; TensorFlow errors become the InputError they describe."""
    source = logs.open_logs(pattern)
    dataset = source.dataset(kwargs.pop("batch_size", 2), **kwargs)
    batches = []
    try:
        for batch in dataset:
            batches.append({k: v.numpy() for k, v in batch.items()})
    except tf.errors.OpError as error:
        raise (log_diagnosis.translate_error(error) or error) from None
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def expected_columns():
    columns = list(zip(*ROWS))
    return {name: np.array(values) for name, values in zip(HEADER, columns)}


def test_csv_plain_gzip_and_tfrecord_give_equal_tensors(tmp_path):
    plain = write_csv(tmp_path / "a.csv")
    gz = write_csv(tmp_path / "a.csv.gz", opener=gzip.open)
    records = [example(r) for r in ROWS]
    tfr = write_tfrecord(tmp_path / "a.tfrecord", records)
    tfr_gz = write_tfrecord(tmp_path / "b.tfrecord.gz", records, "GZIP")
    want = expected_columns()
    results = [read_all(p) for p in (plain, gz, tfr, tfr_gz)]
    for got in results:
        assert set(HEADER) <= set(got)
        # ids are strings whatever they look like
        assert list(got["user_id"]) == [str(v).encode() for v in want["user_id"]]
        assert list(got["item_id"]) == [str(v).encode() for v in want["item_id"]]
        assert got["timestamp"].dtype == np.int64 and got["click"].dtype == np.int64
        np.testing.assert_array_equal(got["timestamp"], want["timestamp"].astype(np.int64))
        np.testing.assert_array_equal(got["click"], want["click"].astype(np.int64))
        assert got["dwell_time"].dtype == np.float64
        np.testing.assert_allclose(got["dwell_time"], want["dwell_time"].astype(float), rtol=1e-7)
        assert got["position"].dtype == np.int64
        np.testing.assert_array_equal(got["position"], want["position"].astype(np.int64))
        assert got["score"].dtype == np.float32
        np.testing.assert_allclose(got["score"], want["score"].astype(np.float32))
        assert [c.decode() for c in got["category"]] == list(want["category"])
    for other in results[1:]:
        for name in HEADER:
            if name == "dwell_time" and other is not results[1]:
                # tf.Example's float_list holds float32: TFRecord dwell is the float32 value.
                np.testing.assert_array_equal(
                    other[name], results[0][name].astype(np.float32).astype(np.float64))
            else:
                np.testing.assert_array_equal(other[name], results[0][name])


def test_schema_inference_follows_spec_types(tmp_path):
    path = write_csv(tmp_path / "a.csv")
    schema = logs.open_logs(path).schema
    assert schema.columns == tuple(HEADER)
    assert schema.dtypes == {"impression_id": "string", "user_id": "string", "item_id": "string",
                             "timestamp": "int64", "click": "int64", "dwell_time": "float64",
                             "position": "int64", "category": "string", "score": "float32"}
    assert schema.feature_columns() == ("user_id", "item_id", "position", "category", "score")


def test_a_column_empty_on_the_sampled_rows_is_typed_by_the_rows_after(tmp_path):
    # A sparse numeric feature (values from row 1,501 on), and a column empty everywhere: the
    # first is sampled further and typed by its numbers, the second stays text.
    header = [*HEADER, "likes", "unused"]
    rows = [[*row, "" if k < 1500 else str(k % 7), ""]
            for k, row in enumerate(ROWS * 400)]
    path = tmp_path / "sparse.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    assert len(rows) == len(ROWS) * 400 > 1500 > schema_inference.SAMPLE_ROWS
    schema = logs.open_logs(str(path)).schema
    assert schema.dtypes["likes"] == "int64" and schema.dtypes["unused"] == "string"
    got = read_all(str(path))
    np.testing.assert_array_equal(got["likes"], [0 if k < 1500 else k % 7
                                                 for k in range(len(rows))])


def test_a_column_empty_in_the_first_files_is_typed_by_the_last_files(tmp_path):
    """A column filled only in the latest files (a feature a TFRecord log's writer added
    later, labelled to CSV, is empty in the earlier shards): typed by the numbers in the last
    LAST_SAMPLE_FILES files, not read as text, which would hash its numbers as words."""
    files = schema_inference.SAMPLE_FILES + 2
    for day in range(files):
        with open(tmp_path / f"day-{day:02d}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([*HEADER, "rating"])
            writer.writerows([*row, f"{k + 0.5}" if day == files - 1 else ""]
                             for k, row in enumerate(ROWS))
    assert logs.open_logs(str(tmp_path / "*.csv")).schema.dtypes["rating"] == "float32"
    first = str(tmp_path / f"day-{files - 2:02d}.csv")  # empty in every file read
    assert logs.open_logs([str(tmp_path / "day-0*.csv"), first]).schema.dtypes[
        "rating"] == "string"


@pytest.mark.parametrize("values,kind", [
    (["007", "-12", ""], "int64"),
    (["9223372036854775807", "-9223372036854775808"], "int64"),  # int64's ends, 19 digits
    (["1", "9223372036854775808"], "string"),  # an integer past int64: ids float32 would merge
    (["12345678901234567890", "1"], "string"),  # 20 digits
    (["-123456789012345678901234567890"], "string"),
    (["12345678901234567890", "1.5"], "float32"),  # decimals among them: numbers
    (["1", "2.5", "1e3", "nan"], "float32"),
    (["1", "two"], "string"),
    (["", ""], "string"),
])
def test_column_type_inference(values, kind):
    assert schema_inference._infer_value_type(values) == kind


SPELLINGS = ["1", "-1", "+1", "01", "-0", "9223372036854775807", "1.0", "1e3", "+1.5", ".5",
             "5.", "1.5e+3", "inf", "-inf", "+inf", "INF", "nan", "NaN", "+nan", "Infinity",
             "-Infinity", "infinity", "1_000", "1,5", "1e", "e3", "infinit", "NULL", "\\N"]


@pytest.mark.parametrize("text", SPELLINGS)
def test_number_patterns_accept_what_tensorflows_reader_reads(text):
    """The patterns that type columns and explain refused lines accept exactly the spellings
    `tf.strings.to_number` (the reader's parser) reads, as int64 and as float32 (without
    surrounding spaces, and but for hexadecimal, which TensorFlow reads and these refuse)."""
    def reads(dtype):
        try:
            tf.strings.to_number(text, out_type=dtype)
            return True
        except tf.errors.InvalidArgumentError:
            return False

    assert log_schema.fits_int64(text) == reads(tf.int64), text
    assert bool(log_schema.FLOAT_RE.match(text)) == reads(tf.float32), text


@pytest.mark.parametrize("odd", ["NULL", "\\N", "None", "NA", "null", "#N/A", "+3", "Infinity",
                                 "-", "?", "--", "."])
def test_a_value_that_would_make_a_number_column_text_is_refused(tmp_path, odd):
    """One missing-value marker, '+3' or 'Infinity' among a column's sampled numbers made it
    text before, its numbers hashed as words, without a word: now refused, naming the column
    and the value; a text column holding 'NA' among words, or the column typed as string by
    --column_types, reads."""
    rows = replace_field(ROWS, 2, "position", odd)
    path = write_csv(tmp_path / "odd.csv", rows=replace_field(rows, 1, "category", "NA"))
    with pytest.raises(InputError, match=re.escape(
            f"column 'position': the sampled first rows of {path} hold numbers and '{odd}': ")
            ) as refused:
        schema_inference.infer_schema([log_files.LogFile(path, "csv", False)], None)
    # The row that holds it (the third data row), named as a text editor numbers it (the
    # header is line 1).
    assert (refused.value.file, refused.value.row) == (path, 4)
    assert str(refused.value).startswith(f"{path}, line 4, column 'position': ")
    schema, _, _ = schema_inference.infer_schema([log_files.LogFile(path, "csv", False)],
                                           {"position": "string"})
    assert schema.dtypes["position"] == schema.dtypes["category"] == "string"
    # The statistics job's logs had it as text (an artifact made before the check): so read.
    schema, _, _ = schema_inference.infer_schema([log_files.LogFile(path, "csv", False)], None,
                                           unseen_types={"position": "string"})
    assert schema.dtypes["position"] == "string"


def test_a_marker_among_numbers_is_named_in_a_later_gzip_file_with_its_line(tmp_path):
    """The refusal names the file and line of the marker's first row, in sampling order: here
    the second file (gzip, CRLF line ends), its fifth data row, line 6."""
    first = write_csv(tmp_path / "day-0.csv", rows=ROWS)
    second = write_csv(tmp_path / "day-1.csv.gz", rows=replace_field(ROWS, 4, "position", "NULL"),
                       opener=gzip.open, newline="\r\n")
    files = [log_files.LogFile(first, "csv", False), log_files.LogFile(second, "csv", True)]
    with pytest.raises(InputError) as refused:
        schema_inference.infer_schema(files, None)
    assert (refused.value.file, refused.value.row, refused.value.column) == (
        second, 6, "position")
    assert "hold numbers and 'NULL'" in str(refused.value)


def test_the_line_named_for_a_marker_is_the_sampled_one_as_the_reader_counts_lines(
        tmp_path, monkeypatch):
    """With 3 rows sampled a file, a marker past the first file's sample (its line 6) is not
    the one named: the second file's, line 3, is. A CR inside a quoted field does not end a
    line for the reader, nor in the line named."""
    monkeypatch.setattr(schema_inference, "SAMPLE_ROWS", 3)
    first = write_csv(tmp_path / "day-0.csv", rows=replace_field(ROWS, 4, "position", "NULL"))
    second = write_csv(tmp_path / "day-1.csv", rows=replace_field(ROWS, 1, "position", "NULL"))
    files = [log_files.LogFile(first, "csv", False), log_files.LogFile(second, "csv", False)]
    with pytest.raises(InputError) as refused:
        schema_inference.infer_schema(files, None)
    assert (refused.value.file, refused.value.row) == (second, 3)
    # Line 2's quoted category holds a CR; line 4 is blank; the marker is on line 5.
    path = tmp_path / "cr.csv"
    path.write_text(",".join(HEADER) + "\n"
                    '11,u1,a1,1767571200,1,31.5,0,"news\rsport",0.25\n'
                    "12,u1,a2,1767571210,0,0.0,1,sports,-1.5\n"
                    "\n"
                    "13,42,7,1767657600,1,0.0,NA,tech,3.0\n", newline="")
    with pytest.raises(InputError) as refused:
        schema_inference.infer_schema([log_files.LogFile(str(path), "csv", False)], None)
    assert (refused.value.file, refused.value.row) == (str(path), 5)


@pytest.mark.parametrize("values,kind", [
    (["\\N", "NULL", ""], "string"),  # a sparse text column of a database's markers alone
    (["+1.5", "+2", "-0.5"], "float32"),  # a '+' float32 reads, among decimals
    (["+1", "2"], None),  # among integers it does not: refused
])
def test_markers_alone_and_signed_decimals_are_not_refused(tmp_path, values, kind):
    rows = [list(r) for r in ROWS]
    for row, value in zip(rows, values):
        row[HEADER.index("score")] = value
    path = write_csv(tmp_path / "values.csv", rows=rows[:len(values)])
    files = [log_files.LogFile(path, "csv", False)]
    if kind is None:
        with pytest.raises(InputError, match="column 'score': .* hold numbers and '\\+1'"):
            schema_inference.infer_schema(files, None)
    else:
        assert schema_inference.infer_schema(files, None)[0].dtypes["score"] == kind


def test_rows_keep_file_order_and_source_lines(tmp_path):
    first = write_csv(tmp_path / "day-0.csv", rows=ROWS[:3])
    write_csv(tmp_path / "day-1.csv", rows=ROWS[3:])
    got = read_all(str(tmp_path / "day-*.csv"), with_source=True, batch_size=4)
    # impression_id is text (passed through as written).
    np.testing.assert_array_equal(got["impression_id"], [b"11", b"12", b"13", b"14", b"15"])
    assert [os.path.basename(p.decode()) for p in got[logs.SOURCE_FILE]] == \
        ["day-0.csv"] * 3 + ["day-1.csv"] * 2
    np.testing.assert_array_equal(got[logs.SOURCE_ROW], [2, 3, 4, 2, 3])
    assert first.endswith("day-0.csv")



def test_one_file_spelled_several_ways_is_read_once(tmp_path, monkeypatch):
    first = write_csv(tmp_path / "day-0.csv", rows=ROWS[:3])
    write_csv(tmp_path / "day-1.csv", rows=ROWS[3:])
    os.symlink(tmp_path / "day-0.csv", tmp_path / "link.csv")
    monkeypatch.chdir(tmp_path)
    spellings = ",".join([first, "./day-0.csv", "day-*.csv", str(tmp_path / "link.csv"),
                          "../" + tmp_path.name + "/day-1.csv"])
    files = log_files.expand_inputs(spellings)
    # Each file once, under the first spelling that matched it.
    assert [f.path for f in files] == [first, "day-1.csv"]
    got = read_all(spellings, with_source=True, batch_size=4)
    np.testing.assert_array_equal(got["impression_id"], [b"11", b"12", b"13", b"14", b"15"])

@pytest.mark.parametrize("line", [
    'a,b,c', '"a","b, and more","c"', 'a,"say ""hi""",c', '"",,', 'a,b,""""', 'a,b,c\r\n',
    'a,5" screen,c', 'a,"b"x,c', 'a,"b,c', 'a,b,c"', '"a"",b,c', 'a,b,"c"d', 'a, "b",c',
    'a,b\rc,d', 'a,b,c\r'])
def test_the_quoting_check_refuses_exactly_what_tensorflows_csv_parser_refuses(line):
    # The reference is TensorFlow's own parser, which the reader's fast path uses, on the line
    # as TextLineDataset gives it: without its LF or CRLF (a file's last line may end in CR).
    read = line[:-2] if line.endswith("\r\n") else line.removesuffix("\n")
    try:
        tf.io.decode_csv(tf.constant([read]), record_defaults=[""] * 3)
        accepted = True
    except tf.errors.InvalidArgumentError as error:
        # (a field count other than 3 is not a quoting problem; none of the lines has one)
        assert "quote" in error.message.lower(), error.message
        accepted = False
    problem = log_diagnosis.quoting_problem(line)
    assert (problem is None) == accepted, (line, problem)


def test_an_integer_written_as_a_float_gets_its_hint(tmp_path):
    # pandas writes an integer column that once held a NaN as 1728061688.0.
    rows = [["u1", "i1", 1728061688, 1, 3.5], ["u2", "i2", "1728061700.0", 0, 0]]
    path = tmp_path / "floats.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([["user_id", "item_id", "timestamp", "click",
                                       "dwell_time"]] + rows)
    with pytest.raises(InputError, match=re.escape(
            "line 3, column 'timestamp': expected an integer, found '1728061700.0'; an integer "
            "written as a float: write the column as integers")):
        read_all(str(path))
    columns = ["user_id", "item_id", "timestamp", "click", "dwell_time"]
    typed = [(3, "click", log_schema.INT_RE, "int64")]
    assert "written as a float" not in str(log_diagnosis.csv_line_problem(
        "u,i,1,1.5,2", columns, typed, "x.csv", 2))
    # A pandas bool column: True/False.
    assert str(log_diagnosis.csv_line_problem("u,i,1,False,2", columns, typed, "x.csv", 2)) == (
        "x.csv, line 2, column 'click': expected an integer, found 'False'; a boolean written "
        "as text: write the column as 0 and 1 (pandas: .astype('int64') before to_csv)")


def test_a_lone_cr_inside_a_field_is_named_at_the_readers_line(tmp_path):
    # CRLF line ends, and on line 4 (as the reader and `sed -n 4p` count lines: LF ends them)
    # a title "Oslo<CR>Bergen": not a line end, a line break inside an unquoted field.
    lines = ["user_id,item_id,timestamp,click,dwell_time,title"] + [
        f"u{k},i{k},{1_775_001_600 + k},1,30.0,t{k}" for k in range(6)]
    lines[3] = lines[3].replace(",t2", ",Oslo\rBergen")
    path = tmp_path / "titles.csv"
    path.write_bytes("\r\n".join(lines).encode() + b"\r\n")
    with pytest.raises(InputError, match=re.escape(
            "titles.csv, line 4, column 'title': a line break (CR) inside an unquoted field")):
        read_all(str(path))


def test_crlf_bom_blank_lines_and_quotes(tmp_path):
    path = tmp_path / "a.csv"
    with open(path, "w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(HEADER)
        writer.writerows(ROWS[:2])
        handle.write("\r\n")
        writer.writerows(ROWS[2:])
    got = read_all(str(path), batch_size=3, with_source=True)
    np.testing.assert_array_equal(got["impression_id"], [b"11", b"12", b"13", b"14", b"15"])
    np.testing.assert_array_equal(got[logs.SOURCE_ROW], [2, 3, 5, 6, 7])
    assert got["category"][4] == "café, bar".encode()


@pytest.mark.parametrize("whole_files", [True, False], ids=["whole", "by_line"])
def test_a_header_written_apart_with_lf_before_crlf_rows_reads_as_crlf(tmp_path, whole_files):
    """A header written with "\\n", then rows by csv.writer (CR LF by default): read as the
    same file with LF throughout, where the whole-file reader kept each row's CR (TensorFlow's
    "Unquoted fields cannot have quotes/CRLFs inside" as a traceback)."""
    plain = write_csv(tmp_path / "plain.csv")
    with open(tmp_path / "mixed.csv", "w", newline="", encoding="utf-8") as handle:
        handle.write(",".join(HEADER) + "\n")
        csv.writer(handle).writerows(ROWS)  # lineterminator "\r\n"
    assert b"\r\n" in (tmp_path / "mixed.csv").read_bytes()
    want, got = read_all(plain), read_all(str(tmp_path / "mixed.csv"), whole_files=whole_files)
    for column in want:
        np.testing.assert_array_equal(got[column], want[column], err_msg=column)


def test_a_crlf_line_among_lf_lines_is_named(tmp_path):
    lines = open(write_csv(tmp_path / "plain.csv"), encoding="utf-8").read().splitlines()
    path = tmp_path / "later.csv"
    path.write_bytes(("\n".join(lines[:3]) + "\r\n" + "\n".join(lines[3:]) + "\n").encode())
    with pytest.raises(InputError, match=re.escape(
            f"later.csv, line 3, column '{HEADER[-1]}': the line ends with CR LF where the "
            "file's first lines end with LF alone: end every line alike (LF, or CR LF)")):
        read_all(str(path))
    # Read line by line, the reader strips the CR: the rows as written.
    assert len(read_all(str(path), whole_files=False)["impression_id"]) == len(ROWS)


def test_empty_dwell_on_unclicked_row_is_zero(tmp_path):
    rows = [r[:5] + ("",) + r[6:] if r[4] == 0 else r for r in ROWS]
    got = read_all(write_csv(tmp_path / "a.csv", rows=rows))
    np.testing.assert_array_equal(got["dwell_time"], [31.5, 0, 0, 1234.567, 0])


def test_unclicked_dwell_allowed_by_flag_is_zeroed_and_marked(tmp_path):
    rows = list(ROWS)
    rows[1] = rows[1][:5] + (12.0,) + rows[1][6:]
    path = write_csv(tmp_path / "a.csv", rows=rows)
    got = read_all(path, allow_unclicked_dwell=True)
    np.testing.assert_array_equal(got["dwell_time"], [31.5, 0, 0, 1234.567, 0])
    np.testing.assert_array_equal(got[logs.DWELL_ZEROED], [0, 1, 0, 0, 0])
    with pytest.raises(InputError, match=r"a\.csv, line 3, column 'dwell_time': expected 0 or "
                                         r"empty on an unclicked row"):
        read_all(path)


def replace_field(rows, index, column, value):
    rows = [list(r) for r in rows]
    rows[index][HEADER.index(column)] = value
    return rows


# (description, rows or header change, expected message pattern)
CSV_CASES = [
    ("click outside {0,1}", replace_field(ROWS, 2, "click", 2),
     r"line 4, column 'click': expected 0 or 1, found 2"),
    ("negative dwell", replace_field(ROWS, 0, "dwell_time", -3.0),
     r"line 2, column 'dwell_time': expected seconds >= 0, found -3"),
    ("nan dwell", replace_field(ROWS, 3, "dwell_time", "nan"),
     r"line 5, column 'dwell_time': expected a finite number of seconds, found nan"),
    ("infinite dwell", replace_field(ROWS, 3, "dwell_time", "inf"),
     r"line 5, column 'dwell_time': expected a finite number of seconds, found inf"),
    ("text timestamp", replace_field(ROWS, 1, "timestamp", "yesterday"),
     r"line 3, column 'timestamp': expected an integer, found 'yesterday'"),
    ("text dwell", replace_field(ROWS, 4, "dwell_time", "12s"),
     r"line 6, column 'dwell_time': expected a number, found '12s'"),
    ("empty click", replace_field(ROWS, 1, "click", ""),
     r"line 3, column 'click': expected a value, found an empty field"),
    ("clicked without dwell", replace_field(ROWS, 0, "dwell_time", ""),
     r"line 2, column 'dwell_time': a clicked row needs its dwell time"),
    ("decimal in an integer feature", replace_field(ROWS, 4, "position", "2.5"),
     r"line 6, column 'position': expected an integer \(type inferred"),
    ("integer past int64", replace_field(ROWS, 3, "position", "9223372036854775808"),
     r"line 5, column 'position': expected an integer \(type inferred"),
    ("non-finite float feature", replace_field(ROWS, 2, "score", "inf"),
     r"line 4, column 'score': expected a finite number, found inf"),
    ("extra field", [list(r) for r in ROWS[:3]] + [list(ROWS[3]) + ["x"]] + [list(ROWS[4])],
     r"line 5: expected 9 fields as in the header, found 10"),
    ("timestamp in milliseconds", replace_field(ROWS, 2, "timestamp", 1767657600000),
     r"line 4, column 'timestamp': expected unix seconds \(at most 253402300799, 9999-12-31 "
     r"UTC\), found 1767657600000: milliseconds, microseconds or nanoseconds\? divide by "
     r"10\^3, 10\^6 or 10\^9"),
    ("negative timestamp", replace_field(ROWS, 2, "timestamp", -1),
     r"line 4, column 'timestamp': expected unix seconds \(1970-01-01 UTC or later\), found -1: "
     r"a missing time written as a negative number\? leave those rows out"),
    ("timestamp in nanoseconds", replace_field(ROWS, 3, "timestamp", 1767657601000000000),
     r"line 5, column 'timestamp': expected unix seconds .*found 1767657601000000000: "),
    # Spellings Python reads as numbers and TensorFlow's reader does not (a traceback before).
    ("Infinity dwell", replace_field(ROWS, 3, "dwell_time", "Infinity"),
     r"line 5, column 'dwell_time': expected a number \(TensorFlow's reader does not read "
     r"'Infinity', and no value here may be infinite\), found 'Infinity'"),
    ("plus-signed timestamp", replace_field(ROWS, 1, "timestamp", "+1767571210"),
     r"line 3, column 'timestamp': expected an integer \(TensorFlow's reader takes no '\+' "
     r"sign on an integer: write it without one\)"),
    ("a missing-value marker in an integer feature", replace_field(ROWS, 4, "position", "NULL"),
     r"line 6, column 'position': expected an integer \(a missing value is an empty field "
     r"here"),
]


@pytest.mark.parametrize("name,rows,pattern", CSV_CASES, ids=[c[0] for c in CSV_CASES])
def test_bad_csv_values_name_file_line_and_column(tmp_path, monkeypatch, name, rows, pattern):
    # Types are inferred from a sample: keep the bad rows out of it, as in a long file.
    monkeypatch.setattr(schema_inference, "SAMPLE_ROWS", 1)
    path = write_csv(tmp_path / "bad.csv.gz", rows=rows, opener=gzip.open)
    with pytest.raises(InputError, match=pattern) as caught:
        read_all(path)
    assert caught.value.file.endswith("bad.csv.gz") or "bad.csv.gz" in str(caught.value)


def test_missing_required_column_is_named(tmp_path):
    header = [h if h != "click" else "clicked" for h in HEADER]
    path = write_csv(tmp_path / "a.csv", header=header)
    with pytest.raises(InputError, match=r"a\.csv, line 1: missing required column 'click'"):
        logs.open_logs(path)


def _exported(text: str, name: str, encoding: str, tmp_path) -> str:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


@pytest.mark.parametrize("name,encoding,separator,header,says", [
    ("tabs.csv", "utf-8", "\t", HEADER, "; one column, its names separated by tabs: the logs "
                                       "are read as comma-separated CSV"),
    ("tabs.tsv", "utf-8", "\t", HEADER, "; one column, its names separated by tabs: "),
    ("semicolons.txt", "utf-8", ";", HEADER, "; one column, its names separated by semicolons"),
    ("cased.csv", "utf-8", ",", [h.title() for h in HEADER], "; it has 'User_Id': column names "
                                                            "are case-sensitive"),
    ("utf16le.csv", "utf-16-le", ",", HEADER, "; its text holds NUL bytes: UTF-16? save the "
                                              "file as UTF-8"),
])
def test_a_header_that_lacks_a_column_says_why_it_may(tmp_path, name, encoding, separator,
                                                      header, says):
    """Another separator (a .tsv named so is read as text, not as a corrupt TFRecord), a
    name's case, UTF-16 without its byte order mark: the refusal says which, and prints no
    NUL byte."""
    ascii_rows = [[str(v).replace("é", "e") for v in row] for row in ROWS]  # (UTF-16: below)
    rows = [separator.join(header)] + [separator.join(row) for row in ascii_rows]
    path = _exported("\n".join(rows) + "\n", name, encoding, tmp_path)
    with pytest.raises(InputError, match="line 1: missing required column 'user_id' ") as caught:
        logs.open_logs(path)
    assert str(caught.value).endswith(says) or says in str(caught.value), str(caught.value)
    assert "\x00" not in str(caught.value)


def test_utf16_is_named(tmp_path):
    """UTF-16 with its byte order mark, and without one holding a non-ASCII letter (its
    header then does not decode as UTF-8 with NULs, as ASCII text does: above)."""
    text = "\n".join([",".join(HEADER)] + [",".join(str(v) for v in row) for row in ROWS])
    path = _exported("\ufeff" + text, "unicode.csv", "utf-16-le", tmp_path)
    with pytest.raises(InputError, match=re.escape(
            "unicode.csv: is not UTF-8 text (invalid start byte at byte 0); it starts with a "
            "UTF-16 byte order mark (a spreadsheet's 'Unicode Text'?): save it as UTF-8 CSV")):
        logs.open_logs(path)
    path = _exported(text, "no_mark.csv", "utf-16-le", tmp_path)
    with pytest.raises(InputError, match=re.escape(
            "no_mark.csv: is not UTF-8 text (invalid continuation byte at byte 538); a quarter "
            "of its bytes are NUL: UTF-16? save it as UTF-8 CSV")):
        logs.open_logs(path)


@pytest.mark.parametrize("content,pattern", [
    (b"", r"is empty \(0 bytes\)"),
    (",".join(HEADER).encode() + b"\n", r"the input has no rows: .*empty\.csv holds only a "
                                         r"header$"),
])
def test_empty_input(tmp_path, content, pattern):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=pattern):
        logs.open_logs(str(path))


def test_two_header_only_files_hold_no_rows(tmp_path):
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_bytes(",".join(HEADER).encode() + b"\n")
    with pytest.raises(InputError, match=r"the input has no rows: .*a\.csv, .*b\.csv hold only "
                                         r"a header$"):
        logs.open_logs(str(tmp_path / "*.csv"))


def test_glob_matching_nothing_and_directory(tmp_path):
    with pytest.raises(InputError, match=r"no file matches .*nothing-\*\.csv"):
        logs.open_logs(str(tmp_path / "nothing-*.csv"))
    with pytest.raises(InputError, match=r"is a directory"):
        logs.open_logs(str(tmp_path))
    # A glob matching a directory among files (a Spark output `hour=15.csv/part-0.csv`): its
    # files would be left out, so it is refused, naming the directory.
    write_csv(tmp_path / "hour=14.csv")
    (tmp_path / "hour=15.csv").mkdir()
    write_csv(tmp_path / "hour=15.csv" / "part-0.csv")
    with pytest.raises(InputError) as refused:
        logs.open_logs(str(tmp_path / "hour=*"))
    directory = tmp_path / "hour=15.csv"
    assert str(refused.value) == (
        f"{tmp_path / 'hour=*'} matches 1 directory ({directory}), whose files it would leave "
        f"out; give a glob of the files in them ({directory}/*), or one that matches files only")
    assert len(logs.open_logs(f"{tmp_path / 'hour=14.csv'},{directory}/*").files) == 2
    # A link whose target is gone: named so, not as a permission problem.
    (tmp_path / "gone.csv").symlink_to(tmp_path / "moved.csv")
    with pytest.raises(InputError, match=r"gone\.csv: is a symbolic link to .*moved\.csv, which "
                                         "does not exist"):
        logs.open_logs(str(tmp_path / "gone.csv"))


def test_differing_headers_are_refused(tmp_path):
    write_csv(tmp_path / "a.csv")
    write_csv(tmp_path / "b.csv", header=HEADER[:-1] + ["other"])
    with pytest.raises(InputError, match=r"b\.csv, line 1: has header .* unlike"):
        logs.open_logs(str(tmp_path / "*.csv"))


@pytest.mark.parametrize("sample_rows", [1000, 1], ids=["found-while-sampling", "found-while-reading"])
def test_corrupt_gzip_is_named(tmp_path, monkeypatch, sample_rows):
    monkeypatch.setattr(schema_inference, "SAMPLE_ROWS", sample_rows)
    good = write_csv(tmp_path / "a.csv.gz", opener=gzip.open, rows=ROWS * 200)
    data = open(good, "rb").read()
    # A truncated stream: the header parses, the body ends early.
    (tmp_path / "b.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"b\.csv\.gz: is corrupt or truncated"):
        read_all(str(tmp_path / "*.csv.gz"), batch_size=64)
    (tmp_path / "c.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(InputError, match=r"c\.csv\.gz: is named as gzip but is not gzip"):
        logs.open_logs(str(tmp_path / "c.csv.gz"))


@pytest.mark.parametrize("sample_rows", [1000, 1], ids=["found-while-sampling", "found-while-reading"])
def test_corrupt_tfrecord_is_named(tmp_path, monkeypatch, sample_rows):
    monkeypatch.setattr(schema_inference, "SAMPLE_ROWS", sample_rows)
    records = [example(r) for r in ROWS * 50]
    path = write_tfrecord(tmp_path / "a.tfrecord", records)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF  # flips a byte inside a record: its CRC no longer matches
    (tmp_path / "bad.tfrecord").write_bytes(bytes(data))
    # Its record by the framing (8 bytes of length, 4 of CRC, the data, 4 of CRC each).
    ends = np.cumsum([16 + len(r) for r in records])
    bad = int(np.searchsorted(ends, len(data) // 2, side="right")) + 1
    with pytest.raises(InputError, match=rf"bad\.tfrecord, record {bad}: is corrupt or truncated: "
                                         rf"{bad - 1} record\(s\) read, then corrupted record"):
        read_all(str(tmp_path / "bad.tfrecord"), batch_size=16)
    # Cut short: the record the file ends in, and the offset said in bytes.
    (tmp_path / "cut.tfrecord").write_bytes(bytes(data[:int(ends[9]) + 20]))
    with pytest.raises(InputError, match=r"cut\.tfrecord, record 11: is corrupt or truncated: 10 "
                                         r"record\(s\) read, then a record cut short at byte [0-9,]+: "):
        read_all(str(tmp_path / "cut.tfrecord"), batch_size=16)


def test_a_tfrecord_that_cannot_be_opened_is_not_called_corrupt(tmp_path):
    gone = log_files.LogFile(str(tmp_path / "gone.tfrecord"), "tfrecord", False)
    error = log_files.tfrecord_damage(gone, "whatever the first read said")
    assert error.file == gone.path and error.row is None
    assert error.reason.startswith("cannot read the file (")
    assert log_files.damage_reason("truncated record at 1253270' failed with EOF reached",
                                    gzip=True) == ("a record cut short at byte 1,253,270 of the "
                                                   "decompressed stream: EOF reached")


def test_tfrecord_wrong_type_names_record_and_feature(tmp_path):
    records = [example(r) for r in ROWS]
    records[3] = example(ROWS[3], override={"click": 1.0})
    path = write_tfrecord(tmp_path / "a.tfrecord", records)
    with pytest.raises(InputError, match=r"a\.tfrecord, record 4, column 'click': .*[Tt]ype"):
        read_all(path)


def test_tfrecord_missing_required_feature_names_record(tmp_path):
    records = [example(r) for r in ROWS]
    records[2] = example(ROWS[2], override={"timestamp": None})
    path = write_tfrecord(tmp_path / "a.tfrecord", records)
    with pytest.raises(InputError, match=r"a\.tfrecord, record 3, column 'timestamp': expected a "
                                         r"value"):
        read_all(path)


def test_tfrecord_bad_click_value(tmp_path):
    records = [example(r) for r in ROWS]
    records[1] = example(ROWS[1], override={"click": 5})
    path = write_tfrecord(tmp_path / "a.tfrecord.gz", records, "GZIP")
    with pytest.raises(InputError, match=r"record 2, column 'click': expected 0 or 1, found 5"):
        read_all(path)


def test_timestamp_bound_is_the_last_second_of_year_9999(tmp_path):
    import datetime as dt

    last = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc).timestamp()
    assert log_schema.MAX_TIMESTAMP == int(last)
    at_bound = replace_field(ROWS, 4, "timestamp", int(last))
    got = read_all(write_csv(tmp_path / "a.csv", rows=at_bound))
    assert got["timestamp"][4] == int(last)
    past = replace_field(ROWS, 4, "timestamp", int(last) + 1)
    with pytest.raises(InputError, match=r"b\.csv, line 6, column 'timestamp': expected unix "
                                         r"seconds .*found 253402300800"):
        read_all(write_csv(tmp_path / "b.csv", rows=past))
    # The first bound: 1970-01-01 00:00:00 UTC is read, the second before it is not.
    assert log_schema.MIN_TIMESTAMP == int(dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
                                           .timestamp()) == 0
    got = read_all(write_csv(tmp_path / "c.csv", rows=replace_field(ROWS, 4, "timestamp", 0)))
    assert got["timestamp"][4] == 0
    with pytest.raises(InputError, match=r"d\.csv, line 6, column 'timestamp': expected unix "
                                         r"seconds \(1970-01-01 UTC or later\), found -1"):
        read_all(write_csv(tmp_path / "d.csv", rows=replace_field(ROWS, 4, "timestamp", -1)))


def test_tfrecord_timestamp_in_milliseconds_names_record(tmp_path):
    records = [example(r) for r in ROWS]
    records[1] = example(ROWS[1], override={"timestamp": 1767571210000})
    path = write_tfrecord(tmp_path / "a.tfrecord", records)
    with pytest.raises(InputError, match=r"a\.tfrecord, record 2, column 'timestamp': expected "
                                         r"unix seconds .*found 1767571210000: milliseconds, "):
        read_all(path)


def test_tfrecord_negative_timestamp_names_record(tmp_path):
    records = [example(r) for r in ROWS]
    records[2] = example(ROWS[2], override={"timestamp": -86400})
    path = write_tfrecord(tmp_path / "a.tfrecord", records)
    with pytest.raises(InputError, match=r"a\.tfrecord, record 3, column 'timestamp': expected "
                                         r"unix seconds \(1970-01-01 UTC or later\), found "
                                         r"-86400: a missing time"):
        read_all(path)


def test_a_tfrecord_feature_added_in_the_last_files_is_a_column(tmp_path):
    # 14 daily files: 'likes' written from day 12 on (the last three files), 'mood' only in
    # day 11 (neither the first 10 nor the last 3: past the sample, as documented).
    for day in range(14):
        extra = {"likes": 7} if day >= 11 else {"mood": "calm"} if day == 10 else {}
        header = HEADER + list(extra)
        write_tfrecord(tmp_path / f"day-{day:02d}.tfrecord",
                       [example(r + tuple(extra.values()), header) for r in ROWS])
    source = logs.open_logs(f"{tmp_path}/day-*.tfrecord")
    assert source.schema.dtypes["likes"] == "int64" and "mood" not in source.schema.dtypes
    rows = [batch for batch in source.dataset(len(ROWS) * 14)]
    likes = rows[0]["likes"].numpy()
    assert likes.tolist() == [0] * len(ROWS) * 11 + [7] * len(ROWS) * 3  # absent before: 0
    assert schema_inference.LAST_SAMPLE_FILES == 3 and schema_inference.SAMPLE_FILES == 10


def test_mixed_formats_are_refused(tmp_path):
    write_csv(tmp_path / "a.csv")
    write_tfrecord(tmp_path / "b.tfrecord", [example(r) for r in ROWS])
    with pytest.raises(InputError, match="mixes CSV and TFRecord"):
        logs.open_logs(f"{tmp_path}/a.csv,{tmp_path}/b.tfrecord")


def test_column_type_override(tmp_path):
    path = write_csv(tmp_path / "a.csv")
    source = logs.open_logs(path, column_types={"position": "string", "score": "float64"})
    assert source.schema.dtypes["position"] == "string"
    got = read_all(path)  # inference without override still int64
    assert got["position"].dtype == np.int64
    with pytest.raises(InputError, match="column 'click' is always int64"):
        logs.open_logs(path, column_types={"click": "float32"})
    with pytest.raises(InputError, match="'nope', which the logs do not have"):
        logs.open_logs(path, column_types={"nope": "string"})


def test_serialize_examples_matches_protobuf():
    columns = {
        "i": np.array([0, 1, -1, 127, 128, 2**40, -(2**62)], np.int64),
        "f": np.array([0.0, -1.5, 3.25, 1e-8, np.float32(1234.567), 7.0, 2.0], np.float32),
        "s": np.array(["", "a", "é,\"x", "a" * 300, "z", "y", "w"], object),
        "b": np.array([b"\x00\xff", b"", b"k", b"l", b"m", b"n", b"o"], object),
    }
    ours = log_writers.serialize_examples(columns)
    for row, record in enumerate(ours):
        want = tf.train.Example()
        feature = want.features.feature
        feature["i"].int64_list.value.append(int(columns["i"][row]))
        feature["f"].float_list.value.append(float(columns["f"][row]))
        feature["s"].bytes_list.value.append(columns["s"][row].encode())
        feature["b"].bytes_list.value.append(columns["b"][row])
        assert tf.train.Example.FromString(record) == want, row


def test_reads_from_tensorflow_file_systems(tmp_path):
    """URLs go through tf.io.gfile (gs://, hdfs://, ...); TensorFlow's ram:// file system stands
    in for a bucket here."""
    local = write_csv(tmp_path / "a.csv.gz", opener=gzip.open)
    remote = "ram://dwellrank-test/logs/a.csv.gz"
    tf.io.gfile.makedirs("ram://dwellrank-test/logs")
    tf.io.gfile.copy(local, remote, overwrite=True)
    got = read_all("ram://dwellrank-test/logs/*.csv.gz")
    want = read_all(local)
    for name in HEADER:
        np.testing.assert_array_equal(got[name], want[name])
    # A plain CSV file there too (its text is sampled through io's wrappers, which a GFile
    # alone does not fit), and a bad line in it named with its line.
    plain = write_csv(tmp_path / "b.csv")
    tf.io.gfile.copy(plain, "ram://dwellrank-test/plain/b.csv", overwrite=True)
    got = read_all("ram://dwellrank-test/plain/b.csv")
    for name in HEADER:
        np.testing.assert_array_equal(got[name], want[name])
    bad = write_csv(tmp_path / "c.csv", rows=replace_field(ROWS, 2, "click", 2))
    tf.io.gfile.copy(bad, "ram://dwellrank-test/plain/c.csv", overwrite=True)
    with pytest.raises(InputError, match=r"c\.csv, line 4, column 'click': expected 0 or 1"):
        read_all("ram://dwellrank-test/plain/c.csv")
    # A scheme this TensorFlow has no file system for: one error naming it, not a traceback.
    with pytest.raises(InputError, match=re.escape(
            "hdfs://namenode:8020/logs/*.csv: TensorFlow here has no file system for hdfs:// "
            "URLs")):
        logs.open_logs("hdfs://namenode:8020/logs/*.csv")
    with pytest.raises(InputError, match="no file matches ram://dwellrank-test/none"):
        logs.open_logs("ram://dwellrank-test/none-*.csv")


def test_rows_per_file_and_day_equal_a_counter():
    import collections

    rng = np.random.default_rng(0)
    into, want = {}, collections.Counter()
    batches = [(np.full(50, 3), np.full(50, 19_000)),  # one file, one day
               (rng.integers(0, 4, 300), rng.integers(18_990, 19_003, 300)),
               (np.array([], np.int64), np.array([], np.int64)),
               (np.array([1, 1, 2]), np.array([-5, 7, -5]))]  # any int64 day (the reader's refuse < 0)
    for files, days in batches:
        logs.add_file_day_rows(into, files, days)
        want.update(zip(files.tolist(), days.tolist()))
    assert into == dict(want)
    assert all(type(f) is int and type(d) is int for f, d in into)


def test_numbers_with_spaces_around_them_are_typed_as_the_reader_reads_them(tmp_path):
    """A "a, b, c" export: TensorFlow's reader reads " 1.25" and " 21" as numbers, and did for
    timestamp, click and dwell_time, but the type inference made price and age text (hashed
    words)."""
    path = tmp_path / "spaced.csv"
    path.write_text("user_id, item_id, timestamp, click, dwell_time, price, age\n"
                    "u1, i1, 1767571200, 1, 12.5, 1.25, 21\n"
                    "u2, i2, 1767571201, 0, 0, 2.5 , 33 \n")
    source = logs.open_logs(str(path))
    assert (source.schema.dtypes["price"], source.schema.dtypes["age"]) == ("float32", "int64")
    got = read_all(str(path))
    np.testing.assert_array_equal(got["price"], np.float32([1.25, 2.5]))
    np.testing.assert_array_equal(got["age"], [21, 33])


def test_an_empty_id_is_refused_in_logs_with_outcomes_as_a_missing_feature_is(tmp_path):
    """An empty user_id made every such row one user (never light for rule T2, one shared
    embedding), where a tf.Example without the feature was refused. Scoring's candidates may
    lack one: a logged-out request is scored as served."""
    rows = replace_field(ROWS, 1, "user_id", "")
    path = write_csv(tmp_path / "a.csv", rows=rows)
    with pytest.raises(InputError, match=re.escape(
            "a.csv, line 3, column 'user_id': expected an id, found an empty field (rows "
            "without an id would all be one user: drop them or give each its id)")):
        read_all(path)
    rows = replace_field(ROWS, 2, "item_id", "")
    with pytest.raises(InputError, match=r"line 4, column 'item_id': expected an id, found an "
                                         r"empty field \(rows without an id would all be one "
                                         r"item"):
        read_all(write_csv(tmp_path / "b.csv", rows=rows))
    candidates = logs.open_logs(path, candidates=("user_id", "item_id"))
    got = next(iter(candidates.dataset(8)))
    assert got["user_id"].numpy().tolist()[1] == b""


def test_a_jobs_empty_marker_is_left_out_and_other_compressions_are_named(tmp_path):
    """Spark's output directory globbed (`out/*`): its empty `_SUCCESS`, taken for a TFRecord,
    made the input "mix CSV and TFRecord files"; a .bz2 or .xz log was "a corrupt TFRecord"."""
    import bz2
    import lzma

    out = tmp_path / "out"
    out.mkdir()
    write_csv(out / "part-00000.csv")
    (out / "_SUCCESS").write_bytes(b"")
    files = log_files.expand_inputs(str(out / "*"))
    assert [os.path.basename(f.path) for f in files] == ["part-00000.csv"]
    # Named as it is, it is an input like any other (and refused as empty where read).
    assert len(log_files.expand_inputs(str(out / "_SUCCESS"))) == 1
    text = open(write_csv(tmp_path / "plain.csv"), "rb").read()
    for name, data, kind, command in (("a.csv.bz2", bz2.compress(text), "bzip2", "bzip2 -dc"),
                                      ("a.csv.xz", lzma.compress(text), "xz", "xz -dc")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InputError, match=re.escape(
                f"{tmp_path / name}: is {kind}-compressed; the readers read plain or gzip "
                f"files: recompress it with gzip ({command} FILE | gzip > FILE.gz)")):
            log_files.expand_inputs(str(tmp_path / name))


def test_shard_names_keep_the_inputs_stem_in_any_case():
    """One name for the label and scoring jobs' shards (scoring kept an upper-case suffix in
    the stem: `00000-DAY.CSV.csv`); names by hand, each matching SHARD_PATTERN."""
    from pipelines.label import labelling

    cases = [((3, "/logs/day-01.csv.gz", "csv", True), "00003-day-01.csv.gz"),
             ((0, "DAY.CSV", "csv", False), "00000-DAY.csv"),
             ((12, "gs://b/x.TFRecords.gzip", "tfrecord", True), "00012-x.tfrecord.gz"),
             ((1, "part.tfr.gz", "csv", False), "00001-part.csv"),
             ((2, "notes.v2.csv", "tfrecord", False), "00002-notes.v2.tfrecord")]
    for args, name in cases:
        assert log_writers.shard_name(*args) == name
        assert re.fullmatch(log_writers.SHARD_PATTERN, name)

    class File:
        def __init__(self, path):
            self.path = path

    files = [File("a/day-00.csv"), File("b/DAY-01.CSV.GZ")]
    assert labelling.shard_names(files, "tfrecord", True) == {
        "a/day-00.csv": "00000-day-00.tfrecord.gz", "b/DAY-01.CSV.GZ": "00001-DAY-01.tfrecord.gz"}

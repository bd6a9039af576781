"""--format: Go templates, the tab writer and docker/cli's table/json/custom formats."""

from __future__ import annotations

import pytest

from dockweb.docker.formatter import format_rows, pre_format
from dockweb.docker.gofmt import FormatError, go_float, go_json, go_sprintf
from dockweb.docker.tabwriter import ALIGN_RIGHT, DEBUG, DISCARD_EMPTY_COLUMNS, TabWriter, tabulate
from dockweb.docker.template import Template, render
from dockweb.docker.template_funcs import lookup_method

IMAGE_HEADERS = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
}
IMAGES_TABLE = "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}"


def image(repo: str, tag: str, image_id: str, created: str, size: str) -> dict[str, str]:
    return {
        "Repository": repo,
        "Tag": tag,
        "ID": image_id,
        "CreatedSince": created,
        "Size": size,
        "Digest": "<none>",
        "CreatedAt": "2024-01-01 00:00:00 +0000 UTC",
    }


# --- tabwriter: the cases of docker/cli's tabwriter_test.go (escape/HTML cases left out) ------

TABWRITER_CASES = [
    ("1a", 8, 0, 1, ".", 0, "", ""),
    ("1a debug", 8, 0, 1, ".", DEBUG, "", ""),
    ("2", 8, 0, 1, ".", 0, "\n\n\n", "\n\n\n"),
    ("3", 8, 0, 1, ".", 0, "a\nb\nc", "a\nb\nc"),
    ("4a", 8, 0, 1, ".", 0, "\t", ""),
    ("4b", 8, 0, 1, ".", ALIGN_RIGHT, "\t", ""),
    ("5", 8, 0, 1, ".", 0, "*\t*", "*.......*"),
    ("5b", 8, 0, 1, ".", 0, "*\t*\n", "*.......*\n"),
    ("5c", 8, 0, 1, ".", 0, "*\t*\t", "*.......*"),
    ("5c debug", 8, 0, 1, ".", DEBUG, "*\t*\t", "*.......|*"),
    ("5d", 8, 0, 1, ".", ALIGN_RIGHT, "*\t*\t", ".......**"),
    ("6", 8, 0, 1, ".", 0, "\t\n", "........\n"),
    ("7a", 8, 0, 1, ".", 0, "a) foo", "a) foo"),
    ("7b", 8, 0, 1, " ", 0, "b) foo\tbar", "b) foo  bar"),
    ("7c", 8, 0, 1, ".", 0, "c) foo\tbar\t", "c) foo..bar"),
    ("7d", 8, 0, 1, ".", 0, "d) foo\tbar\n", "d) foo..bar\n"),
    ("7e", 8, 0, 1, ".", 0, "e) foo\tbar\t\n", "e) foo..bar.....\n"),
    ("8", 8, 0, 1, "*", 0, "Hello, world!\n", "Hello, world!\n"),
    ("9a", 1, 0, 0, ".", 0, "1\t2\t3\t4\n11\t222\t3333\t44444\n", "1.2..3...4\n11222333344444\n"),
    ("9c", 1, 0, 0, ".", 0, "1\t2\t3\t4\f11\t222\t3333\t44444\n", "1234\n11222333344444\n"),
    (
        "9c debug",
        1,
        0,
        0,
        ".",
        DEBUG,
        "1\t2\t3\t4\f11\t222\t3333\t44444\n",
        "1|2|3|4\n---\n11|222|3333|44444\n",
    ),
    ("10a", 5, 0, 0, ".", 0, "1\t2\t3\t4\n", "1....2....3....4\n"),
    ("10b", 5, 0, 0, ".", 0, "1\t2\t3\t4\t\n", "1....2....3....4....\n"),
    (
        "11",
        8,
        0,
        1,
        ".",
        0,
        "本\tb\tc\naa\t本本本\tcccc\tddddd\naaa\tbbbb\n",
        "本......b.......c\naa......本本本..cccc....ddddd\naaa.....bbbb\n",
    ),
    (
        "12a",
        8,
        0,
        1,
        " ",
        ALIGN_RIGHT,
        "a\tè\tc\t\naa\tèèè\tcccc\tddddd\t\naaa\tèèèè\t\n",
        "       a       è       c\n      aa     èèè    cccc   ddddd\n     aaa    èèèè\n",
    ),
    (
        "12b",
        2,
        0,
        0,
        " ",
        0,
        "a\tb\tc\naa\tbbb\tcccc\naaa\tbbbb\n",
        "a  b  c\naa bbbcccc\naaabbbb\n",
    ),
    (
        "12c",
        8,
        0,
        1,
        "_",
        0,
        "a\tb\tc\naa\tbbb\tcccc\naaa\tbbbb\n",
        "a_______b_______c\naa______bbb_____cccc\naaa_____bbbb\n",
    ),
    (
        "13a",
        4,
        0,
        1,
        "-",
        0,
        "4444\t日本語\t22\t1\t333\n999999999\t22\n7\t22\n\t\t\t88888888\n\n"
        "666666\t666666\t666666\t4444\n1\t1\t999999999\t0000000000\n",
        "4444------日本語-22--1---333\n999999999-22\n7---------22\n------------------88888888\n\n"
        "666666-666666-666666----4444\n1------1------999999999-0000000000\n",
    ),
    (
        "13b",
        4,
        0,
        3,
        ".",
        0,
        "4444\t333\t22\t1\t333\n999999999\t22\n7\t22\n\t\t\t88888888\n\n"
        "666666\t666666\t666666\t4444\n1\t1\t999999999\t0000000000\n",
        "4444........333...22...1...333\n999999999...22\n7...........22\n"
        "....................88888888\n\n666666...666666...666666......4444\n"
        "1........1........999999999...0000000000\n",
    ),
    (
        "14",
        1,
        0,
        2,
        " ",
        ALIGN_RIGHT,
        ".0\t.3\t2.4\t-5.1\t\n23.0\t12345678.9\t2.4\t-989.4\t\n5.1\t12.0\t2.4\t-7.0\t\n"
        ".0\t0.0\t332.0\t8908.0\t\n.0\t-.3\t456.4\t22.1\t\n.0\t1.2\t44.4\t-13.3\t\t",
        "    .0          .3    2.4    -5.1\n  23.0  12345678.9    2.4  -989.4\n"
        "   5.1        12.0    2.4    -7.0\n    .0         0.0  332.0  8908.0\n"
        "    .0         -.3  456.4    22.1\n    .0         1.2   44.4   -13.3",
    ),
    ("15a", 4, 0, 0, ".", 0, "a\t\tb", "a.......b"),
    ("15b", 4, 0, 0, ".", DISCARD_EMPTY_COLUMNS, "a\t\tb", "a.......b"),
    ("15c", 4, 0, 0, ".", DISCARD_EMPTY_COLUMNS, "a\v\vb", "a...b"),
    ("15d", 4, 0, 0, ".", ALIGN_RIGHT | DISCARD_EMPTY_COLUMNS, "a\v\vb", "...ab"),
    (
        "16a",
        100,
        100,
        0,
        "\t",
        0,
        "a\tb\t\td\na\tb\t\td\te\na\na\tb\tc\td\na\tb\tc\td\te\n",
        "a\tb\t\td\na\tb\t\td\te\na\na\tb\tc\td\na\tb\tc\td\te\n",
    ),
    (
        "16b",
        100,
        100,
        0,
        "\t",
        DISCARD_EMPTY_COLUMNS,
        "a\vb\v\vd\na\vb\v\vd\ve\na\na\vb\vc\vd\na\vb\vc\vd\ve\n",
        "a\tb\td\na\tb\td\te\na\na\tb\tc\td\na\tb\tc\td\te\n",
    ),
    (
        "16b debug",
        100,
        100,
        0,
        "\t",
        DISCARD_EMPTY_COLUMNS | DEBUG,
        "a\vb\v\vd\na\vb\v\vd\ve\na\na\vb\vc\vd\na\vb\vc\vd\ve\n",
        "a\t|b\t||d\na\t|b\t||d\t|e\na\na\t|b\t|c\t|d\na\t|b\t|c\t|d\t|e\n",
    ),
    (
        "16c debug",
        100,
        100,
        0,
        "\t",
        DISCARD_EMPTY_COLUMNS | DEBUG,
        "a\tb\t\td\na\tb\t\td\te\na\na\tb\tc\td\na\tb\tc\td\te\n",
        "a\t|b\t|\t|d\na\t|b\t|\t|d\t|e\na\na\t|b\t|c\t|d\na\t|b\t|c\t|d\t|e\n",
    ),
]


def _chunkings(src: str) -> list[list[str]]:
    """All at once, char by char, and in growing slices, as the upstream test writes."""
    fib: list[str] = []
    i, d = 0, 0
    while i < len(src):
        fib.append(src[i : i + d])
        i, d = i + d, d + 1
        if i + d > len(src):
            d = len(src) - i
    return [[src], list(src), fib]


@pytest.mark.parametrize(
    ("name", "minwidth", "tabwidth", "padding", "padchar", "flags", "src", "expected"),
    TABWRITER_CASES,
    ids=[c[0] for c in TABWRITER_CASES],
)
def test_it_aligns_like_dockers_tabwriter(
    name, minwidth, tabwidth, padding, padchar, flags, src, expected
):
    w = TabWriter(minwidth, tabwidth, padding, padchar, flags)
    for chunks in _chunkings(src):
        for chunk in chunks:
            w.write(chunk)
        assert w.flush() == expected


def test_it_aligns_only_consecutive_lines_as_one_column_block():
    src = "aaaa\tbbb\td\naa\tb\tdd\na\t\naa\tcccc\teee\n"
    out = tabulate(src, TabWriter(0, 0, 1, ".", 0))
    # b and c are in distinct columns: the third line breaks the b column.
    assert out == "aaaa.bbb.d\naa...b...dd\na....\naa...cccc.eee\n"


# --- docker tables ---------------------------------------------------------------------------


def test_it_prints_the_docker_images_header_alone():
    out = format_rows([], IMAGES_TABLE, IMAGE_HEADERS)
    assert out == "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"


def test_it_prints_a_docker_images_table():
    rows = [
        image("busybox", "latest", "a416a98b71e2", "2 weeks ago", "4.26MB"),
        image("localhost:5000/app", "v1.0.1", "3f57d9401f8d", "24 hours ago", "77.8MB"),
        image("<none>", "<none>", "77af4d6b9913", "19 months ago", "1.09GB"),
    ]
    out = format_rows(rows, IMAGES_TABLE, IMAGE_HEADERS)
    assert out == (
        "REPOSITORY           TAG       IMAGE ID       CREATED         SIZE\n"
        "busybox              latest    a416a98b71e2   2 weeks ago     4.26MB\n"
        "localhost:5000/app   v1.0.1    3f57d9401f8d   24 hours ago    77.8MB\n"
        "<none>               <none>    77af4d6b9913   19 months ago   1.09GB\n"
    )


def test_it_matches_the_20_10_image_id_and_created_widths():
    rows = [image("busybox", "latest", "a416a98b71e2", "12 months ago", "4.26MB")]
    header = format_rows(rows, IMAGES_TABLE, IMAGE_HEADERS).splitlines()[0]
    assert header == "REPOSITORY   TAG       IMAGE ID       CREATED         SIZE"


def test_it_prints_no_value_for_a_header_without_a_name():
    # docker images --format 'table {{.ID}}\t{{.Foo}}|...' on Docker 20.10.24, no images.
    fmt = "table {{.ID}}\\t{{.Foo}}|{{json .Repository}}|{{upper .Tag}}|{{pad .Size 1 1}}|"
    assert format_rows([], fmt, IMAGE_HEADERS) == "IMAGE ID   <no value>|REPOSITORY|TAG| SIZE |\n"


def test_it_keeps_header_text_through_header_functions():
    fmt = 'table {{lower .Repository}}\\t{{truncate .ID 2}}\\t{{split .Tag ":"}}'
    rows = [image("busybox", "latest", "a416a98b71e2", "", "")]
    lines = format_rows(rows, fmt, IMAGE_HEADERS).splitlines()
    assert lines == ["REPOSITORY   IMAGE ID   TAG", "busybox      a4         [latest]"]


def test_it_renders_custom_formats_one_row_per_line():
    rows = [image("busybox", "latest", "a1", "", ""), image("alpine", "3.19", "b2", "", "")]
    out = format_rows(rows, "{{.Repository}}:{{.Tag}}\\t{{.ID}}", IMAGE_HEADERS)
    assert out == "busybox:latest\ta1\nalpine:3.19\tb2\n"


def test_it_prints_one_json_object_per_line_for_json():
    rows = [{"Repository": "busybox", "ID": "a1", "Size": "1MB"}]
    out = format_rows(rows, "json", IMAGE_HEADERS)
    assert out == '{"ID":"a1","Repository":"busybox","Size":"1MB"}\n'


def test_it_prints_nothing_without_rows_outside_tables():
    assert format_rows([], "{{.ID}}", IMAGE_HEADERS) == ""


def test_it_preformats_like_docker():
    assert pre_format("table  {{.ID}}\\t{{.Tag}} ") == "{{.ID}}\t{{.Tag}}"
    assert pre_format("json") == "{{json .}}"
    assert pre_format("  {{.ID}}\\n") == "{{.ID}}\n"
    assert pre_format("\t{{.ID}}") == "\t{{.ID}}"  # only spaces are trimmed


def test_it_reports_unknown_fields_as_docker_does():
    with pytest.raises(FormatError) as exc:
        format_rows(
            [image("a", "b", "c", "", "")],
            "{{.Foo}}",
            IMAGE_HEADERS,
            type_name="*formatter.imageContext",
        )
    assert str(exc.value) == (
        'template parsing error: template: :1:2: executing "" at <.Foo>: '
        "can't evaluate field Foo in type *formatter.imageContext"
    )


def test_it_reports_unknown_functions_as_docker_does():
    with pytest.raises(FormatError) as exc:
        format_rows([], "table {{.ID | foo}}", IMAGE_HEADERS)
    assert str(exc.value) == 'template parsing error: template: :1: function "foo" not defined'


def test_it_reports_unclosed_actions():
    with pytest.raises(FormatError, match="template: :1: unclosed action$"):
        format_rows([], "{{.ID", IMAGE_HEADERS)


# --- template language -----------------------------------------------------------------------

DATA = {
    "Name": "web",
    "Tags": ["a", "b"],
    "Labels": {"z": "1", "a": "2"},
    "Nil": None,
    "On": True,
    "Off": False,
    "Count": 3,
    "Ratio": 2.5,
    "Big": 1234567.0,
    "Nested": {"Inner": {"Value": "deep"}},
    "Items": [{"Name": "x", "Size": 1}, {"Name": "y", "Size": 2}],
    "Empty": [],
    "Label": lookup_method({"com.example": "yes"}),
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.Name}}", "web"),
        ("{{.Nested.Inner.Value}}", "deep"),
        ("{{.Tags}}", "[a b]"),
        ("{{.Labels}}", "map[a:2 z:1]"),
        ("{{.Items}}", "[map[Name:x Size:1] map[Name:y Size:2]]"),
        ("{{.On}} {{.Off}}", "true false"),
        ("{{.Count}} {{.Ratio}} {{.Big}}", "3 2.5 1.234567e+06"),
        ("{{.Nil}}", "<nil>"),
        ("{{.Labels.missing}}", "<no value>"),
        ("{{json .Labels}}", '{"a":"2","z":"1"}'),
        ("{{json .Tags}}", '["a","b"]'),
        ("{{.Name | json}}", '"web"'),
        ('{{join .Tags ", "}}', "a, b"),
        ('{{split "a:b:c" ":"}}', "[a b c]"),
        (
            '{{upper .Name}} {{lower "ABC"}} {{title "hello wide-world"}}',
            "WEB abc Hello Wide-World",
        ),
        ('[{{pad .Name 1 2}}][{{pad "" 1 2}}]', "[ web  ][]"),
        ("{{truncate .Name 2}} {{truncate .Name 10}}", "we web"),
        ("{{len .Tags}} {{len .Name}} {{len .Labels}}", "2 3 2"),
        ('{{index .Tags 1}} {{index .Labels "z"}} {{index .Nested "Inner" "Value"}}', "b 1 deep"),
        ("{{println .Name .Count}}", "web 3\n"),
        ("{{print .Name .Count 1 2}}", "web3 1 2"),
        (
            '{{printf "%s-%d-%.1f-%5s|%-4s|%q-%v-%x" .Name .Count .Ratio "r" "l" "q" .Tags 255}}',
            'web-3-2.5-    r|l   |"q"-[a b]-ff',
        ),
        ("{{range .Tags}}<{{.}}>{{end}}", "<a><b>"),
        ("{{range $i, $t := .Tags}}{{$i}}={{$t}};{{end}}", "0=a;1=b;"),
        ("{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}", "a=2;z=1;"),
        ("{{range .Items}}{{.Name}}:{{.Size}} {{end}}", "x:1 y:2 "),
        ("{{range .Empty}}x{{else}}none{{end}}", "none"),
        ('{{range .Tags}}{{if eq . "b"}}{{break}}{{end}}{{.}}{{end}}', "a"),
        ('{{range .Tags}}{{if eq . "a"}}{{continue}}{{end}}{{.}}{{end}}', "b"),
        ("{{if .On}}yes{{else}}no{{end}}", "yes"),
        ("{{if .Off}}yes{{else if .Count}}count{{else}}no{{end}}", "count"),
        ("{{if .Empty}}yes{{else}}no{{end}}", "no"),
        ("{{if and .On .Count}}both{{end}} {{or .Off .Name}} {{not .On}}", "both web false"),
        (
            '{{if eq .Count 3}}three{{end}} {{ne .Name "x"}} {{lt 1 2}} {{ge 2 2}}',
            "three true true true",
        ),
        ("{{with .Nested.Inner}}{{.Value}}{{end}}", "deep"),
        ("{{with .Off}}x{{else}}off{{end}}", "off"),
        ("{{$n := .Name}}{{range .Tags}}{{$n}}{{.}} {{end}}", "weba webb "),
        ("{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
        ("{{range .Tags}}{{$.Name}}{{end}}", "webweb"),
        ("{{(index .Items 1).Name}}", "y"),
        ('{{.Name | printf "%s!" | upper}}', "WEB!"),
        ('{{.Label "com.example"}}', "yes"),
        ("a  {{- .Name -}}  b", "awebb"),
        ("a\n{{- .Name}}\n  {{- /* comment */ -}}\nb", "awebb"),
        ("{{/* only a comment */}}", ""),
        ('{{`raw\\t`}} {{"esc\\t"}}', "raw\\t esc\t"),
        ("{{'a'}} {{0x10}} {{1e3}} {{-2}}", "97 16 1000 -2"),
        ("{{html \"<a href='x'>&\"}}", "&lt;a href=&#39;x&#39;&gt;&amp;"),
    ],
)
def test_it_executes_go_templates(template, expected):
    assert render(template, DATA) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{{.Missing}}",
            'template: :1:2: executing "" at <.Missing>: can\'t evaluate field Missing in type '
            "map[string]interface {}",
        ),
        ("{{.Nested.Nope.Deeper}}", None),  # missing map keys give <no value>, no error
        (
            "{{.Name.Foo}}",
            'template: :1:7: executing "" at <.Name.Foo>: can\'t evaluate field Foo in type string',
        ),
        (
            "{{.Nil.Foo}}",
            'template: :1:6: executing "" at <.Nil.Foo>: nil pointer evaluating interface {}.Foo',
        ),
        ("{{nope}}", 'template: :1: function "nope" not defined'),
        ("{{if .On}}x", "template: :1: unexpected EOF"),
        ("{{end}}", "template: :1: unexpected {{end}}"),
        ("{{$x}}", 'template: :1: undefined variable "$x"'),
        (
            "{{index .Tags 5}}",
            'template: :1:2: executing "" at <index .Tags 5>: error calling index: '
            "index out of range: 5",
        ),
        (
            "{{join .Tags}}",
            'template: :1:2: executing "" at <join>: wrong number of args for join: want 2 got 1',
        ),
        ("{{upper 5}}", 'template: :1:8: executing "" at <5>: expected string; found 5'),
        (
            # Go checks a computed argument where it was computed
            "{{upper .Count}}",
            'template: :1:8: executing "" at <.Count>: wrong type for value; '
            "expected string; got int",
        ),
        (
            "{{upper (len .Name)}}",
            'template: :1:13: executing "" at <.Name>: wrong type for value; '
            "expected string; got int",
        ),
        (
            # a field of docker's row contexts is a method of no arguments
            '{{.Name "arg"}}',
            'template: :1:2: executing "" at <.Name>: wrong number of args for Name: want 0 got 1',
        ),
        (
            '{{.Nested.Inner "arg"}}',
            'template: :1:9: executing "" at <.Nested.Inner>: Inner is not a method but has '
            "arguments",
        ),
        (
            "{{.Label}}",
            'template: :1:2: executing "" at <.Label>: '
            "wrong number of args for Label: want 1 got 0",
        ),
        (
            '{{.Label "a" "b"}}',
            'template: :1:2: executing "" at <.Label>: '
            "wrong number of args for Label: want 1 got 2",
        ),
        ("{{.Label 1}}", 'template: :1:9: executing "" at <1>: expected string; found 1'),
        (
            "{{.Label .Count}}",
            'template: :1:9: executing "" at <.Count>: wrong type for value; expected string; '
            "got int",
        ),
        ("{{range .Name}}{{end}}", None),
        ("{{break}}", "template: :1: {{break}} outside {{range}}"),
        ("a\nb {{.Missing}}", None),
    ],
)
def test_it_reports_template_errors_like_go(template, message):
    if template == "{{.Nested.Nope.Deeper}}":
        assert render(template, DATA) == "<no value>"
        return
    with pytest.raises(FormatError) as exc:
        render(template, DATA)
    if template == "{{range .Name}}{{end}}":
        assert "range can't iterate over web" in str(exc.value)
    elif template == "a\nb {{.Missing}}":
        assert str(exc.value).startswith('template: :2:4: executing "" at <.Missing>')
    else:
        assert str(exc.value) == message


def test_it_can_reuse_a_parsed_template():
    tmpl = Template("{{.Name}}")
    assert [tmpl.execute({"Name": n}) for n in ("a", "b")] == ["a", "b"]


def test_it_treats_missing_keys_as_configured():
    tmpl = Template("[{{.Nope}}]")
    assert tmpl.execute({}, missing="zero") == "[]"
    assert tmpl.execute({}, missing="no value") == "[<no value>]"


# --- Go value formatting ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (2.5, "2.5"),
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (-3.25, "-3.25"),
        (1e21, "1e+21"),
        (float("inf"), "+Inf"),
    ],
)
def test_it_prints_floats_like_go(value, expected):
    assert go_float(value) == expected


def test_it_encodes_json_like_go():
    assert go_json({"b": [1, 2.0, None], "a": "<&>\n\u2028é"}) == (
        # docker 20.10's json is json.Marshal: HTML characters are escaped
        '{"a":"\\u003c\\u0026\\u003e\\n\\u2028é","b":[1,2,null]}'
    )
    assert go_json(1e21) == "1e+21"
    assert go_json("\x01\x08") == '"\\u0001\\u0008"'


def test_it_formats_printf_edge_cases_like_go():
    assert go_sprintf("%d") == "%!d(MISSING)"
    assert go_sprintf("%d", "x") == "%!d(string=x)"
    assert go_sprintf("%s", "a", "b") == "a%!(EXTRA string=b)"
    assert go_sprintf("%05d|%+d|%%|%t", 42, 7, True) == "00042|+7|%|true"
    assert go_sprintf("%.3s|%8.2f|%-6v|", "abcdef", 3.14159, 12) == "abc|    3.14|12    |"

"""Article extraction: decoding, metadata, refusals, and that it runs in a process pool."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context

import pytest

from newswire.processors.extract import (
    EXTRACTOR,
    declared_charset,
    decode_html,
    extract_article,
    page_language,
)
from newswire.records import Extraction

URL = "https://news.example/world/2026/03/talks"

PARAGRAPHS_EN = [
    (
        "Negotiators from both delegations met again on Tuesday in Geneva, resuming talks that had stalled "
        "for almost three months over the sequencing of sanctions relief and the release of detainees."
    ),
    (
        "Officials familiar with the discussions said the mediators had circulated a new draft text, which "
        "both sides were studying before a second round scheduled for the end of the week."
    ),
    (
        "The foreign ministry declined to comment on the details but said in a short statement that it "
        "remained committed to a negotiated settlement and would send its delegation back on Friday."
    ),
    (
        "Analysts cautioned that earlier rounds had also opened with optimism, only to break down when the "
        "parties returned to the question of who would monitor the ceasefire line in the east."
    ),
]


def page(
    paragraphs: list[str],
    *,
    head: str = "",
    lang: str | None = "en-GB",
    charset_meta: str | None = None,
) -> str:
    lang_attr = f' lang="{lang}"' if lang else ""
    meta = f'<meta charset="{charset_meta}">' if charset_meta else ""
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<!DOCTYPE html>\n<html{lang_attr}><head>{meta}<title>Talks resume in Geneva | Example News</title>"
        f"{head}</head><body>"
        '<nav><a href="/">Home</a> <a href="/world">World</a> <a href="/sport">Sport</a></nav>'
        f"<main><article><h1>Talks resume in Geneva</h1>{body}</article></main>"
        "<footer><p>Copyright Example News. All rights reserved.</p><a href='/privacy'>Privacy</a></footer>"
        "</body></html>"
    )


META = (
    '<meta name="author" content="Jane Doe and John Roe">'
    '<meta property="og:site_name" content="Example News">'
    '<meta property="og:title" content="Talks resume in Geneva">'
    '<meta property="article:published_time" content="2026-03-03T14:05:00+01:00">'
)


def test_extractor_names_trafilatura_and_its_version() -> None:
    import trafilatura

    assert EXTRACTOR == f"trafilatura {trafilatura.__version__}"


def test_text_and_metadata() -> None:
    result = extract_article(page(PARAGRAPHS_EN, head=META).encode("utf-8"), URL, "text/html; charset=utf-8")
    assert result is not None
    for paragraph in PARAGRAPHS_EN:
        assert paragraph in result.text
    assert "Privacy" not in result.text and "Sport" not in result.text
    assert result.title == "Talks resume in Geneva"
    assert result.authors == ("Jane Doe", "John Roe")
    assert result.site_name == "Example News"
    assert result.language == "en"
    assert result.published == datetime(2026, 3, 3, 13, 5, tzinfo=UTC)


def test_date_without_zone_is_taken_as_utc() -> None:
    head = '<meta property="article:published_time" content="2026-03-03">'
    result = extract_article(page(PARAGRAPHS_EN, head=head).encode(), URL)
    assert result is not None and result.published == datetime(2026, 3, 3, tzinfo=UTC)


def test_gb2312_label_decoded_as_gb18030() -> None:
    # 镕 (U+9555) is in GBK/GB18030 but not in GB2312: pages labelled gb2312 use it all the same.
    paragraphs = [
        "国务院总理朱镕基今天在北京主持召开国务院常务会议，研究部署进一步扩大内需、促进经济平稳较快发展的各项措施。",
        "会议指出，当前经济运行总体良好，但也面临不少困难和挑战，必须坚持稳中求进的工作总基调，切实做好各项工作。",
        "会议强调，要加大对基础设施建设的投入力度，支持中小企业发展，进一步完善社会保障体系，切实保障和改善民生。",
    ]
    html = page(paragraphs, lang=None, charset_meta="gb2312")
    body = html.encode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        body.decode("gb2312")
    result = extract_article(body, "http://news.example.cn/a/1.html")
    assert result is not None
    assert "朱镕基" in result.text
    assert result.language == "zh"  # no lang attribute: detected from the text


def test_header_charset_beats_meta_and_bom_beats_header() -> None:
    html = page(PARAGRAPHS_EN, charset_meta="iso-8859-1").replace("Geneva", "Genève")
    body = html.encode("utf-8")
    assert declared_charset(body, "text/html; charset=UTF-8") == "utf-8"
    assert declared_charset(body, None) == "cp1252"  # iso-8859-1 labels mean windows-1252
    assert declared_charset(b"\xef\xbb\xbf" + body, "text/html; charset=iso-8859-1") == "utf-8"
    assert "Genève" in decode_html(body, "text/html; charset=UTF-8")


def test_lying_label_falls_back_to_utf8() -> None:
    html = page(PARAGRAPHS_EN, charset_meta="gb2312").replace("Geneva", "Genève – “quoted”")
    decoded = decode_html(html.encode("utf-8"))
    assert "Genève – “quoted”" in decoded


def test_fitting_label_with_a_few_broken_bytes_is_trusted() -> None:
    html = page(PARAGRAPHS_EN * 3, charset_meta="utf-8").replace("Geneva", "Genève")
    body = html.encode("utf-8")
    body = body[:2000] + b"\xff" + body[2000:]  # one stray byte
    decoded = decode_html(body)
    assert "Genève" in decoded and decoded.count("\ufffd") == 1


def test_unlabelled_legacy_bytes_are_sniffed() -> None:
    paragraphs = [
        (
            "Le gouvernement a présenté mercredi un projet de loi très attendu sur la réforme des retraites, "
            "après des mois de négociations difficiles avec les syndicats et le patronat."
        ),
        (
            "Selon le ministère, la réforme entrera en vigueur progressivement à partir de l'année prochaine, "
            "et les carrières longues bénéficieront d'un dispositif spécifique élargi."
        ),
        (
            "Les organisations syndicales ont déjà annoncé une journée de grève et de manifestations la semaine "
            "prochaine, dénonçant un texte qu'elles jugent injuste et précipité."
        ),
    ]
    body = page(paragraphs, lang=None).encode("cp1252")
    result = extract_article(body, "https://journal.example.fr/retraites")
    assert result is not None
    assert "présenté" in result.text and "dénonçant" in result.text
    assert result.language == "fr"


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ('<html lang="de-AT">', "de"),
        ('<html xml:lang="pt_BR">', "pt"),
        ('<html><head><meta http-equiv="Content-Language" content="es-ES">', "es"),
        ('<html><head><meta property="og:locale" content="fr_FR">', "fr"),
        ('<html lang="iw">', "he"),  # withdrawn code
    ],
)
def test_language_from_page_metadata(snippet: str, expected: str) -> None:
    assert page_language(snippet, "Some text long enough to be detected, but it is English.") == expected


def test_three_letter_lang_attribute_falls_through_to_detection() -> None:
    text = "Dies ist ein längerer deutscher Text über die Wirtschaft und die Politik in Europa."
    assert page_language('<html lang="deu">', text) == "de"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "text/html"),
        (b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", None),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, None),
        (page(PARAGRAPHS_EN).encode(), "application/pdf"),
        (page(PARAGRAPHS_EN).encode(), "image/png"),
        (b"<html><body><p>Page not found.</p></body></html>", "text/html"),
        (b"<html><body></body></html>", None),
    ],
)
def test_no_usable_text_gives_none(body: bytes, content_type: str | None) -> None:
    assert extract_article(body, URL, content_type) is None


def test_hostile_pages_do_not_raise() -> None:
    deep = "<div>" * 20_000 + " ".join(PARAGRAPHS_EN) + "</div>" * 20_000
    for body in (
        f"<html><body>{deep}</body></html>".encode(),
        bytes(range(256)) * 200,
        b"<html><body><p>" + b"\x00\xff" * 5000 + b"</p></body></html>",
        b"<" * 100_000,
    ):
        result = extract_article(body, URL, "text/html")
        assert result is None or isinstance(result, Extraction)


def test_document_that_does_not_start_like_html_still_extracts() -> None:
    # trafilatura's own loader refuses such documents; the fallback to an lxml tree does not.
    wrapped = "<text id='x'>" + "".join(f"<p>{p}</p>" for p in PARAGRAPHS_EN) + "</text>"
    result = extract_article(wrapped.encode(), URL, "text/html")
    assert result is not None and PARAGRAPHS_EN[0] in result.text


def test_picklable_and_runs_in_a_process_pool() -> None:
    assert pickle.loads(pickle.dumps(extract_article)) is extract_article
    body = page(PARAGRAPHS_EN, head=META).encode()
    with ProcessPoolExecutor(1, mp_context=get_context("forkserver")) as pool:
        result = pool.submit(extract_article, body, URL, "text/html").result(timeout=60)
    assert result is not None and result.title == "Talks resume in Geneva"
    assert pickle.loads(pickle.dumps(result)) == result


def test_a_page_without_a_known_address_is_extracted() -> None:
    """Replayed or corpus pages may come without a URL: metadata falls back without one."""
    body = f"<html><head><title>Talks</title></head><body><article>{''.join(f'<p>{p}</p>' for p in PARAGRAPHS_EN)}" \
           "</article></body></html>"
    result = extract_article(body.encode(), None)
    assert result is not None
    assert result.text.startswith("Negotiators from both delegations")
    assert result.site_name is None

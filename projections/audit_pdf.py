"""The PDF audit report (`ledger audit export --format pdf`), laid out by reportlab, streaming.

A title page (range, engagements covered, head digest, when and by whom), then per engagement
its parties, money, agreements, milestones, access grants, disputes and their resolution (the
state as of the last version in the export), and its full timeline with actors. Footers carry
the page number and the head digest.

Memory stays flat: flowables come from a generator, one engagement at a time (`LazyStory`); a
timeline is a flowable that pulls one page of rows at a time from the database (`RowStream`);
each finished page is written to the file at once (`StreamingDocument`) rather than kept until
the end.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.pdfbase.pdfdoc import (PDFArray, PDFCrossReferenceTable, PDFDocument, PDFFile,
                                     PDFIndirectObject, PDFName, PDFObject, PDFStream,
                                     PDFTrailer)
from reportlab.pdfbase.pdfmetrics import registerFont, stringWidth
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (CondPageBreak, Flowable, PageBreak, Paragraph, SimpleDocTemplate,
                                Spacer, Table, TableStyle)

from projections.audit_export import (Progress, Selection, describe_range, describe_run,
                                      engagement_batches, outside_note, titled_groups)

PAGE = landscape(A4)
MARGIN = 36
WIDTH = PAGE[0] - 2 * MARGIN
FONT, BOLD = "Helvetica", "Helvetica-Bold"
SIZE, LEADING, PAD = 7, 8.4, 1.6
#: A row longer than this many lines continues on further rows (a page must hold one row).
MAX_LINES = 24
GREY = colors.HexColor("#e8e8e8")
ZEBRA = colors.HexColor("#f6f6f6")

TIMELINE = (("Position", 44), ("Ver.", 26), ("Recorded (UTC)", 82), ("Actor", 100),
            ("Event", 112), ("Summary", 300), ("Entry hash (first 16)", 106))

#: Text the standard fonts cannot show (they cover Windows-1252) is set in a Unicode font.
UNICODE_FONT_FILES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                      "/usr/share/fonts/dejavu/DejaVuSans.ttf")
_unicode_font: str | None | bool = False


def unicode_font() -> str | None:
    global _unicode_font
    if _unicode_font is False:
        _unicode_font = None
        for candidate in UNICODE_FONT_FILES:
            if Path(candidate).is_file():
                registerFont(TTFont("LedgerUnicode", candidate))
                _unicode_font = "LedgerUnicode"
                break
    return _unicode_font  # type: ignore[return-value]


def font_for(text: str, font: str = FONT) -> str:
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        return unicode_font() or font
    return font


# Text in cells -----------------------------------------------------------------------------


def wrap(text: Any, width: float, font: str = FONT, size: float = SIZE) -> list[str]:
    """Lines of `text` no wider than `width`; words too long for a line (hashes) are cut."""
    text = "" if text is None else str(text).replace("\t", "    ")
    if "\n" not in text and "\r" not in text and stringWidth(text, font, size) <= width:
        return [text]
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if stringWidth(candidate, font, size) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while len(word) > 1 and stringWidth(word, font, size) > width:
                cut = _longest_prefix(word, width, font, size)
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines


def _longest_prefix(word: str, width: float, font: str, size: float) -> int:
    low, high = 1, len(word) - 1  # at least one character per line
    while low < high:
        middle = (low + high + 1) // 2
        if stringWidth(word[:middle], font, size) <= width:
            low = middle
        else:
            high = middle - 1
    return low


class Rows:
    """Builds table rows of wrapped cells, with their heights, and the cells' fonts."""

    def __init__(self, widths: list[float], bold_first: bool = False) -> None:
        self.widths = widths
        self.inner = [w - 2 * PAD - 1 for w in widths]
        self.bold_first = bold_first

    def row(self, values: list[Any]) -> list[tuple[list[str], float, list[tuple[int, str]]]]:
        """One logical row as one or more physical rows: (cells, height, unicode columns)."""
        cells, fonts = [], []
        for column, value in enumerate(values):
            text = "" if value is None else str(value)
            font = BOLD if self.bold_first and column == 0 else FONT
            chosen = font_for(text, font)
            if chosen != font:
                fonts.append((column, chosen))
            cells.append(wrap(text, self.inner[column], chosen))
        physical = []
        tallest = max(len(c) for c in cells)
        for start in range(0, tallest, MAX_LINES):
            part = ["\n".join(c[start:start + MAX_LINES]) for c in cells]
            lines = max(len(c[start:start + MAX_LINES]) for c in cells) or 1
            physical.append((part, lines * LEADING + 2 * PAD + 0.5, fonts))
        return physical


def table_style(rows: int, extra: Iterable[tuple[Any, ...]] = ()) -> TableStyle:
    commands: list[tuple[Any, ...]] = [
        ("FONT", (0, 0), (-1, -1), FONT, SIZE, LEADING),
        ("FONT", (0, 0), (-1, 0), BOLD, SIZE, LEADING),
        ("BACKGROUND", (0, 0), (-1, 0), GREY),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), PAD),
        ("BOTTOMPADDING", (0, 0), (-1, -1), PAD),
        ("LEFTPADDING", (0, 0), (-1, -1), PAD),
        ("RIGHTPADDING", (0, 0), (-1, -1), PAD),
    ]
    if rows > 2:
        commands.append(("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, ZEBRA]))
    commands.extend(extra)
    return TableStyle(commands)


class RowStream(Flowable):
    """A table whose rows come from an iterator: each split lays out one frame of rows.

    Only one page of rows is held at a time, and laying out is linear in the rows (one big
    reportlab Table re-measures every remaining row at each page break). Each page's part is a
    Table with the header row (`repeatRows`).
    """

    def __init__(self, header: list[str], widths: list[float],
                 rows: Iterator[list[Any]], buffered: list[Any] | None = None) -> None:
        super().__init__()
        self.header = header
        self.col_widths = widths
        self.builder = Rows(widths)
        self.rows = rows
        self.buffer: list[Any] = buffered if buffered is not None else []
        self.exhausted = False
        self.head = self.builder.row(header)[0]
        self.table: Table | None = None

    def _fill(self, height: float) -> float:
        """Buffers rows until they exceed `height` (or run out); returns their total height."""
        total = self.head[1] + sum(h for _, h, _ in self.buffer)
        while total <= height and not self.exhausted:
            try:
                values = next(self.rows)
            except StopIteration:
                self.exhausted = True
                break
            for physical in self.builder.row(values):
                self.buffer.append(physical)
                total += physical[1]
        return total

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        total = self._fill(available_height)
        self.table = None
        if self.exhausted and total <= available_height:
            self.table = self._table(self.buffer)
            self.table.wrap(available_width, available_height)
        self.width, self.height = sum(self.col_widths), total
        return self.width, total

    def split(self, available_width: float, available_height: float) -> list[Flowable]:
        self._fill(available_height)
        used, fits = self.head[1], 0
        for _, height, _ in self.buffer:
            if used + height > available_height - 1:
                break
            used += height
            fits += 1
        if not fits:
            return []
        part, rest = self.buffer[:fits], self.buffer[fits:]
        following = RowStream(self.header, self.col_widths, self.rows, rest)
        following.exhausted = self.exhausted
        following.head = self.head
        return [self._table(part), following]

    def _table(self, rows: list[Any]) -> Table:
        data = [self.head[0]] + [cells for cells, _, _ in rows]
        heights = [self.head[1]] + [height for _, height, _ in rows]
        extra = [("FONTNAME", (column, index), (column, index), font)
                 for index, (_, _, fonts) in enumerate(rows, start=1) for column, font in fonts]
        table = Table(data, colWidths=self.col_widths, rowHeights=heights, repeatRows=1)
        table.setStyle(table_style(len(data), extra))
        return table

    def draw(self) -> None:
        if self.table is not None:
            self.table.drawOn(self.canv, 0, 0)


def small_table(header: list[str], rows: list[list[Any]], widths: list[float],
                key_value: bool = False) -> Flowable:
    builder = Rows(widths, bold_first=key_value)
    physical = [p for values in ([header] if header else []) + rows for p in builder.row(values)]
    data = [cells for cells, _, _ in physical]
    extra = [("FONTNAME", (column, index), (column, index), font)
             for index, (_, _, fonts) in enumerate(physical) for column, font in fonts]
    if key_value:
        extra += [("BACKGROUND", (0, 0), (-1, 0), colors.white),
                  ("FONT", (0, 0), (0, -1), BOLD, SIZE, LEADING),
                  ("FONT", (1, 0), (-1, -1), FONT, SIZE, LEADING),
                  ("BACKGROUND", (0, 0), (0, -1), GREY)]
    table = Table(data, colWidths=widths, rowHeights=[h for _, h, _ in physical],
                  repeatRows=0 if key_value else 1, hAlign="LEFT")
    table.setStyle(table_style(0 if key_value else len(data), extra))
    return table


# Paragraphs --------------------------------------------------------------------------------

_styles = getSampleStyleSheet()
STYLES = {
    "title": ParagraphStyle("AuditTitle", parent=_styles["Title"], fontSize=20, leading=24),
    "h1": ParagraphStyle("AuditH1", parent=_styles["Heading1"], fontSize=13, leading=16,
                         spaceBefore=10, spaceAfter=4, keepWithNext=0),
    "h2": ParagraphStyle("AuditH2", parent=_styles["Heading2"], fontSize=10, leading=12,
                         spaceBefore=7, spaceAfter=3, keepWithNext=0),
    "body": ParagraphStyle("AuditBody", parent=_styles["BodyText"], fontSize=8.5, leading=11,
                           spaceAfter=3),
    "small": ParagraphStyle("AuditSmall", parent=_styles["BodyText"], fontSize=7.5, leading=9.5,
                            spaceAfter=2),
}


def para(text: Any, style: str = "body") -> Paragraph:
    """A paragraph of plain text (escaped), in a Unicode font when the text needs one."""
    plain = "" if text is None else str(text)
    chosen = STYLES[style]
    font = font_for(plain, chosen.fontName)
    if font != chosen.fontName:
        chosen = ParagraphStyle(f"{chosen.name}-unicode", parent=chosen, fontName=font)
    body = escape(plain).replace("\n", "<br/>")
    return Paragraph(body, chosen)


# The document ------------------------------------------------------------------------------


class LazyStory(list):  # type: ignore[type-arg]
    """The flowables list reportlab's `build` consumes, filled from a generator as it goes.

    `build` loops `while len(flowables)` and takes from the front (`del flowables[0]`, inserting
    split parts back): topping the list up in `len` keeps only a few flowables alive at once.
    """

    AHEAD = 12

    def __init__(self, flowables: Iterator[Flowable]) -> None:
        super().__init__()
        self.source = flowables

    def __len__(self) -> int:
        while super().__len__() < self.AHEAD:
            try:
                self.append(next(self.source))
            except StopIteration:
                break
        return super().__len__()


class Written(PDFObject):
    """What stays in memory of an object already written out: its name, for references."""

    def __init__(self, name: str) -> None:
        self.__InternalName__ = name

    def format(self, document: Any) -> bytes:  # pragma: no cover - never formatted again
        raise AssertionError("an object already written is formatted again")


class StreamingDocument(PDFDocument):
    """A reportlab PDF document that writes each finished page (its dictionary and compressed
    content stream) to the file at once, keeping only its name and offset.

    reportlab otherwise keeps every page's drawing operators as text until `save`, then builds
    the whole file in memory: for 200,000 events that is hundreds of MB. At `save`, only the
    objects not yet written (catalog, page tree, fonts, info) are formatted, then the
    cross-reference table with every object's offset. Only reportlab's own object model is
    used; the overridden `format` follows `PDFDocument.format` step by step.
    """

    _out: BinaryIO
    _offset: int
    _early: set[int]

    def begin(self, out: BinaryIO) -> None:
        self._out, self._offset, self._early = out, 0, set()
        self._put(PDFFile(self._pdfVersion).format(self))  # the header reportlab writes

    def _put(self, data: bytes) -> int:
        at = self._offset
        self._out.write(data)
        self._offset += len(data)
        return at

    def _write_now(self, obj: Any) -> Written:
        name = self.Reference(obj).name
        self.idToOffset[name] = self._put(PDFIndirectObject(name, obj).format(self))
        self._early.add(self.idToObjectNumberAndVersion[name][0])
        stub = self.idToObject[name] = Written(name)
        return stub

    def flush_page(self) -> None:
        """Writes the page just finished: its compressed content stream and its dictionary."""
        page = self.Pages.pages[-1]
        if not isinstance(page.stream, str):
            return
        contents = PDFStream(content=zlib.compress(page.stream.encode("latin-1"), 6))
        contents.dictionary["Filter"] = PDFArray([PDFName("FlateDecode")])
        page.Contents, page.stream = contents, None
        self.Pages.pages[-1] = self._write_now(page)  # registers the stream as it formats
        self._write_now(contents)

    def format(self) -> bytes:
        self.encrypt.prepare(self)
        self.Reference(self.Catalog)
        self.Reference(self.info)
        encryptinfo = self.encrypt.info()
        encryptref = self.Reference(encryptinfo) if encryptinfo else None
        ids, counter = [], 0
        while True:  # objects may be registered while formatting: no range() over a count
            counter += 1
            if counter not in self.numberToId:
                break
            name = self.numberToId[counter]
            ids.append(name)
            if counter not in self._early:
                obj = self.idToObject[name]
                self.idToOffset[name] = self._put(PDFIndirectObject(name, obj).format(self))
        xref = PDFCrossReferenceTable()
        xref.addsection(0, ids)
        start = self._put(xref.format(self))
        trailer = PDFTrailer(startxref=start, Size=len(ids) + 1,
                             Root=self.Reference(self.Catalog), Info=self.Reference(self.info),
                             Encrypt=encryptref, ID=self.ID())
        self._put(trailer.format(self))
        return b""  # already written; reportlab's own save writes this (nothing) elsewhere


class StreamingCanvas(Canvas):
    def __init__(self, out: BinaryIO, **options: Any) -> None:
        super().__init__(io.BytesIO(), **options)
        self._doc.__class__ = StreamingDocument
        self._doc.begin(out)

    def showPage(self) -> None:
        super().showPage()
        self._doc.flush_page()


def write(models: Any, selection: Selection, path: Path, progress: Progress) -> None:
    footer_digest = selection.digest
    made = selection.made_at

    def footer(canvas: Canvas, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 6.5)
        canvas.setFillColor(colors.HexColor("#555555"))
        y = MARGIN / 2
        canvas.drawString(MARGIN, y, f"Engagement Ledger audit export · head digest "
                                     f"{footer_digest} · made {made}"
                                     + (" · redacted for a contractor" if selection.redacted
                                        else ""))
        canvas.drawRightString(PAGE[0] - MARGIN, y, f"page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(str(path), pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN,
                            topMargin=MARGIN, bottomMargin=MARGIN,
                            title="Audit trail export", author="Engagement Ledger",
                            subject=f"{describe_range(selection)}; head digest {selection.digest}",
                            creator="ledger audit export")
    story = LazyStory(_story(models, selection, progress))
    with path.open("wb") as out:
        doc.build(story, onFirstPage=footer, onLaterPages=footer,
                  canvasmaker=lambda _filename, **options: StreamingCanvas(out, **options))


def _story(models: Any, selection: Selection, progress: Progress) -> Iterator[Flowable]:
    yield from _title_page(models, selection)
    done = 0

    def timeline(group: dict[str, Any]) -> Iterator[list[Any]]:
        nonlocal done
        for rows in engagement_batches(models.store, group["engagement_id"], group["low"],
                                       group["high"], selection.redacted):
            yield from _timeline_rows(rows)
            done += len(rows)
            progress(done, selection.entries)

    for group in titled_groups(models.store, selection):
        yield from _engagement_section(models, selection, group)
        yield RowStream([t for t, _ in TIMELINE], [w for _, w in TIMELINE], timeline(group))


def _title_page(models: Any, selection: Selection) -> Iterator[Flowable]:
    yield para("Audit trail export", "title")
    yield para("Engagement Ledger: every recorded event, in the order recorded, with its place "
               "in the SHA-256 hash chains.", "body")
    yield Spacer(1, 6)
    facts = [
        ["Range", describe_range(selection)],
        ["Entries", describe_run(selection)],
        ["Chain", "each engagement's own chain" if selection.engagement
         else "the whole log (one chain over every event)"],
        ["Head digest at export", selection.digest],
        ["Made at", selection.made_at],
        ["Made by", f"{selection.made_by} (declared on the command line, not authenticated)"],
        ["Redaction", "redacted for a contractor: interview and mediation-note contents are "
                      "withheld" if selection.redacted else "none: the full record"],
    ]
    note = outside_note(selection)
    if note:
        facts.append(["Note", note])
    yield small_table([], facts, [130, WIDTH - 130], key_value=True)
    yield Spacer(1, 8)
    yield para("How the record is protected", "h2")
    yield para("Each event is hashed from its stored bytes (SHA-256 of its canonical JSON). Each "
               "entry's hash is SHA-256 of the previous entry's hash followed by the event's "
               "hash, from 64 zeros: once over the whole log, once per engagement. The head of "
               "the whole-log chain is the digest above; a digest kept elsewhere earlier still "
               "matches an entry of a longer, unchanged chain. This report shows the first 16 "
               "hex digits of each entry hash; the JSONL export of the same range carries every "
               "hash and stored event and can be checked offline with "
               "`ledger audit verify --export FILE --digest DIGEST` or the standard-library "
               "script in the ledger's docs/audit.md.", "small")
    yield para("Engagements covered", "h2")
    yield RowStream(["Engagement", "Title", "Client", "Contractor", "Status", "Entries",
                     "Versions"], [200, 150, 110, 110, 80, 50, 70],
                    ([g["engagement_id"], g["title"], g["client"], g["contractor"],
                      g["status"] + (f"/{g['outcome']}" if g["outcome"] else ""), g["entries"],
                      f"{g['low']}–{g['high']}"] for g in titled_groups(models.store, selection)))
    yield PageBreak()


def _timeline_rows(rows: list[dict[str, Any]]) -> Iterator[list[Any]]:
    for r in rows:
        yield [r["position"], r["version"], r["timestamp"][:19].replace("T", " "),
               f"{r['role']}:{r['actor']}", r["type"], r["summary"], r["hash"][:16]]


def engagement_as_of(models: Any, engagement_id: str, version: int) -> dict[str, Any]:
    """The engagement as it stood after `version`, as the JSON contract shows it (redacted for
    a contractor), loaded by the application's repository at that version (its snapshots,
    then the events after them)."""
    from uuid import UUID

    from ledger.views import engagement_state

    engagement = models.app.repository.get(UUID(engagement_id), version=version)
    return engagement_state(engagement, models.actor)


def _engagement_section(models: Any, selection: Selection,
                        group: dict[str, Any]) -> Iterator[Flowable]:
    s = engagement_as_of(models, group["engagement_id"], group["high"])
    ccy = s["currency"]
    status = s["status"] + (f" ({s['outcome']})" if s["outcome"] else "")
    yield CondPageBreak(160)
    yield para(s["title"], "h1")
    yield para(f"Engagement {s['id']} · {status} · versions {group['low']}–{group['high']} in "
               f"this export ({group['entries']} entries); the state below is as of version "
               f"{group['high']}.", "small")
    yield small_table([], [
        ["Client", s["client"]], ["Contractor", s["contractor"]], ["Curator", s["curator"]],
        ["Opened", when(s["opened_at"])], ["Closed", when(s["closed_at"])],
        ["Terms", f"budget {s['budget']} {ccy}; inspection period {s['inspection_days']} days; "
                  f"access grace period {s['grace_days']} days"],
        ["Money", "funded {funded}, released {released}, refunded {refunded}, held in escrow "
                  "{escrow}, committed to milestones {committed}".format(**s["money"])
         + f" ({ccy})"],
    ], [110, WIDTH - 110], key_value=True)
    if s["interviews"] is None:
        yield para("Interviews: withheld from contractors.", "small")
    elif s["interviews"]:
        yield para("Interviews", "h2")
        yield small_table(["Id", "Interviewer", "Decision", "At", "Red flags"], [
            [i["id"], i["interviewer"], i["decision"], when(i["at"]),
             "; ".join(i["red_flags"]) or "—"]
            for i in s["interviews"]], [30, 110, 70, 80, WIDTH - 290])
    if s["agreements"]:
        yield para("Agreements", "h2")
        yield small_table(["Id", "Kind", "Jurisdiction", "Status", "Versions: document, review "
                           "and signatures"], [
            [a["id"], a["kind"].upper(), a["jurisdiction"], a["status"]
             + (f" (v{a['in_force_version']} in force)" if a["in_force_version"] else ""),
             "\n".join(_agreement_version(v) for v in a["versions"])]
            for a in s["agreements"]], [30, 40, 60, 100, WIDTH - 230])
    if s["milestones"]:
        yield para("Milestones and money", "h2")
        yield small_table(["Id", "Title", "Amount", "Due", "Status", "Funded", "Submitted",
                           "Accepted", "Closed"], [
            [m["id"], m["title"], f"{m['amount']} {ccy}", m["due"]
             + (f" (was {m['original_due']})" if m["original_due"] else ""),
             m["status"] + (" (deemed)" if m["deemed_accepted"] else ""), when(m["funded_at"]),
             when(m["submitted_at"]), when(m["accepted_at"]), when(m["closed_at"])]
            for m in s["milestones"]], [26, 190, 74, 80, 80, 80, 80, 80, WIDTH - 690])
    if s["grants"]:
        yield para("Access grants", "h2")
        yield small_table(["Id", "Resource", "Level", "Milestone", "Status", "Until", "Ended"], [
            [g["id"], g["resource"], g["level"], g["milestone"], g["status"], g["until"],
             (f"{when(g['ended_at'])}: {g['end_reason']}" if g["ended_at"] else "—")]
            for g in s["grants"]], [26, 200, 40, 50, 50, 70, WIDTH - 436])
    for d in s["disputes"]:
        yield from _dispute(d, ccy)
    yield para("Timeline", "h2")


def when(moment: str | None) -> str:
    """A recorded time to the second, for the state tables (the JSONL has it in full)."""
    return f"{moment[:10]} {moment[11:19]}" if moment else "—"


def _agreement_version(v: dict[str, Any]) -> str:
    signed = ", ".join(f"{party} {sig['signer']} at {when(sig['at'])}" if sig
                       else f"{party} unsigned"
                       for party, sig in v["signatures"].items())
    review = (f"reviewed by {v['reviewed_by']} at {when(v['reviewed_at'])}" if v["reviewed_by"]
              else "no counsel review")
    return f"v{v['version']} {v['status']}: document {v['sha256']}; {review}; {signed}"


def _dispute(d: dict[str, Any], ccy: str) -> Iterator[Flowable]:
    claim = f"; claim {d['claim']} {ccy}" if d["claim"] else ""
    yield para(f"Dispute {d['id']} on {d['milestone']}: {d['status']}", "h2")
    yield para(f"Opened by the {d['party']} at {when(d['opened_at'])}{claim}. Reason: "
               f"{d['reason']}",
               "small")
    if d["evidence"]:
        yield small_table(["Evidence", "Party", "Description", "Document SHA-256", "At"], [
            [e["id"], e["party"], e["description"], e["sha256"] or "—", when(e["at"])]
            for e in d["evidence"]], [50, 60, WIDTH - 446, 256, 80])
    if d["mediation_notes"] is None:
        yield para("Mediation notes: withheld from contractors.", "small")
    elif d["mediation_notes"]:
        yield para(f"Mediation notes: {len(d['mediation_notes'])} (see the timeline).", "small")
    r = d["resolution"]
    if r:
        findings = "; ".join(f"{k}: {v}" for k, v in r["findings"].items()) or "none"
        yield para(f"Resolved at {when(r['at'])}: {r['release']} {ccy} released to the contractor, "
                   f"{r['refund']} {ccy} refunded to the client. Reasoning: {r['reason']}. "
                   f"Findings: {findings}", "small")
    e = d["escalation"]
    if e:
        yield para(f"Escalated to {e['to']} at {when(e['at'])}; evidence packet SHA-256 "
                   f"{e['packet_sha256'] or '—'}.", "small")

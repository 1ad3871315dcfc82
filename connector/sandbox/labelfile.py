"""Label files as the sandbox makes them: a small valid PDF (A4 sheets, ``labels_per_page`` slots) or ZPL text.

Only what a partner needs to see the flow work: one label per parcel with the order id, the parcel number and
its barcode (as text in the PDF, as a Code 128 field in the ZPL). Real MALL labels carry the carrier's layout.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Label:
    order_id: int
    parcel: int  # 1-based
    parcels: int
    barcode: str


def zpl(labels: list[Label]) -> bytes:
    """One ``^XA … ^XZ`` block per label: a Code 128 barcode and a line of text."""
    blocks = []
    for lb in labels:
        blocks.append(
            "^XA^CI28"
            f"^FO40,40^A0N,36,36^FDMALL Delivery - order {lb.order_id}^FS"
            f"^FO40,90^A0N,30,30^FDparcel {lb.parcel}/{lb.parcels}^FS"
            f"^FO40,150^BY3^BCN,160,Y,N,N^FD{lb.barcode}^FS"
            "^XZ"
        )
    return ("\n".join(blocks) + "\n").encode("ascii")


def _pdf_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf(labels: list[Label], *, labels_per_page: int = 4, first_position: int = 1) -> bytes:
    """A valid PDF 1.4: A4 pages split into ``labels_per_page`` slots, the first label in ``first_position``."""
    per_page = max(1, labels_per_page)
    slots: list[Label | None] = [None] * (max(1, first_position) - 1) + list(labels)
    pages = [slots[i:i + per_page] for i in range(0, len(slots), per_page)] or [[]]
    width, height = 595, 842
    slot_h = height / per_page
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below
    pages_obj = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids = []
    for page in pages:
        lines = []
        for i, lb in enumerate(page):
            if lb is None:
                continue
            top = height - i * slot_h - 40
            for dy, size, text in ((0, 16, f"MALL Delivery - order {lb.order_id}"),
                                   (24, 12, f"parcel {lb.parcel}/{lb.parcels}"),
                                   (48, 20, f"barcode {lb.barcode}")):
                lines.append(f"BT /F1 {size} Tf 40 {top - dy:.0f} Td ({_pdf_text(text)}) Tj ET")
        stream = "\n".join(lines).encode("latin-1")
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R "
                        b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (pages_obj, width, height, content, font)))
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_obj
    objects[pages_obj - 1] = (b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids)
                              + b"] /Count %d >>" % len(kids))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, catalog, xref)
    return bytes(out)

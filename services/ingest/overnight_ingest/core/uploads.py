"""Receive one uploaded file from a multipart request, streaming, within a size cap.

The body is parsed as it arrives (python-multipart's streaming parser): the file part goes to
a temporary file that spills to disk past 1 MiB, so memory stays small whatever the upload's
size, and the transfer stops with :class:`UploadTooLarge` as soon as the cap is passed — also
for a chunked request that declares no length. The caller then streams the temporary file to
storage.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import BinaryIO, cast

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from overnight.errors import OvernightError

#: Bytes kept in memory before the temporary file spills to disk.
SPOOL_BYTES = 1024 * 1024
#: The form field that carries the image.
FILE_FIELD = "file"
#: Bytes the whole body may hold beyond the file cap: boundaries, part headers, small fields.
FORM_OVERHEAD_BYTES = 64 * 1024
#: Longest part header (name + value) accepted, bytes.
MAX_PART_HEADER_BYTES = 8 * 1024


class UploadTooLarge(OvernightError):
    """The upload is larger than the configured cap (answered with 413)."""


class BadUpload(OvernightError):
    """The request is not a multipart form with one ``file`` part (answered with 400)."""


@dataclass
class ReceivedFile:
    """The uploaded file: its client-given name, size (bytes) and content (rewound)."""

    filename: str
    size: int
    content: BinaryIO


class _FilePart:
    """Collects the ``file`` part of a multipart body through the parser's callbacks."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.header_field = b""
        self._value = b""
        self.headers: dict[bytes, bytes] = {}
        self.in_file = False
        self.file: ReceivedFile | None = None
        self.error: OvernightError | None = None

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._add_field(d[s:e]),
            "on_header_value": lambda d, s, e: self._add_value(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": lambda d, s, e: self._data(d[s:e]),
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self.headers, self.header_field, self._value = {}, b"", b""

    def _add_field(self, data: bytes) -> None:
        self.header_field += data
        self._check_header()

    def _add_value(self, data: bytes) -> None:
        self._value += data
        self._check_header()

    def _check_header(self) -> None:
        if len(self.header_field) + len(self._value) > MAX_PART_HEADER_BYTES:
            raise BadUpload(f"a multipart part header is longer than {MAX_PART_HEADER_BYTES} bytes")

    def _header_end(self) -> None:
        self.headers[self.header_field.lower()] = self._value
        self.header_field, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if options.get(b"name") != FILE_FIELD.encode() or b"filename" not in options:
            self.in_file = False
            return
        if self.file is not None:
            raise BadUpload("send one image per request")
        self.in_file = True
        content = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))
        self.file = ReceivedFile(options[b"filename"].decode("utf-8", "replace"), 0, content)

    def _data(self, data: bytes) -> None:
        if not self.in_file or self.file is None:
            return
        self.file.size += len(data)
        if self.file.size > self.limit:
            raise UploadTooLarge(f"upload larger than the limit of {self.limit} bytes")
        self.file.content.write(data)

    def _part_end(self) -> None:
        self.in_file = False


async def receive_file(
    content_type: str | None, body: AsyncIterator[bytes], limit: int
) -> ReceivedFile:
    """Parse a ``multipart/form-data`` body and return its ``file`` part.

    Raises
    ------
    BadUpload
        Not multipart, no boundary, no ``file`` part, or more than one.
    UploadTooLarge
        The file part passed ``limit`` bytes (reading stops there).
    """
    kind, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise BadUpload("send the image as multipart/form-data with a 'file' field")
    part = _FilePart(limit)
    parser = MultipartParser(boundary, part.callbacks())  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > limit + FORM_OVERHEAD_BYTES:  # other form fields count too
                raise UploadTooLarge(
                    f"request body larger than the upload limit of {limit} bytes "
                    f"(+{FORM_OVERHEAD_BYTES} for the form)"
                )
            parser.write(chunk)
        parser.finalize()
    except (UploadTooLarge, BadUpload, MultipartParseError) as err:
        if part.file is not None:
            part.file.content.close()
        if isinstance(err, MultipartParseError):  # e.g. a part header past the parser's cap
            raise BadUpload(f"malformed multipart body: {err}") from err
        raise
    if part.file is None:
        raise BadUpload("the form has no 'file' part with a file name")
    part.file.content.seek(0)
    return part.file

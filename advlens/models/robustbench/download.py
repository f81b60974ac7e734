"""Downloading a checkpoint: HTTPS streaming with progress, resume, a size cap and Google Drive's
confirmation step. Nothing here parses the file; :mod:`.convert` reads it.

- **Progress**: ``progress(done_bytes, total_bytes_or_None, eta_seconds_or_None)`` after each chunk
  (the CLI's bar and the page's both draw it).
- **Resume**: the bytes arrive in ``<dest>.part``; a new attempt sends ``Range: bytes=<size>-`` and
  appends when the server answers 206 (a 200 starts again from zero). ``.part`` files live in the
  download folder, never among the models.
- **Size cap**: a declared ``Content-Length`` above the cap is refused before reading; the stream is
  cut as soon as it passes the cap.
- **Truncation**: fewer bytes than the declared length is an error that says to run the command
  again (which resumes).
- **Google Drive**: ``drive.google.com/uc?export=download&id=ID`` answers a large file with a web
  page that asks to confirm ("can't scan this file for viruses"). The confirmation is either a
  ``download_warning...`` cookie whose value is the token (the older flow: ask again with
  ``confirm=TOKEN``) or an HTML form, ``<form id="download-form" action="https://drive.usercontent.
  google.com/download">`` with hidden ``id``, ``export``, ``confirm`` and ``uuid`` fields (the newer
  flow: ask its action with those fields). Any other web page (a quota or sign-in page) is an error.
- Only ``https://`` URLs, except ``http://`` to this machine (127.0.0.1, localhost: the tests).
"""

from __future__ import annotations

import html
import http.client
import http.cookiejar
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

Progress = Callable[[int, "int | None", "float | None"], None]

GDRIVE_ENTRY = "https://drive.google.com/uc?export=download&id={id}"
CHUNK = 1 << 20
USER_AGENT = "advlens (python urllib)"
MAX_PAGE = 2_000_000  # bytes of a web page read to look for the confirmation form


class DownloadError(Exception):
    """A download that failed; the message is one line for a person."""


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")):
        return
    raise DownloadError(f"refusing to download {url}: only https:// addresses are used")


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def _is_web_page(resp, first: bytes) -> bool:
    ctype = (resp.headers.get("Content-Type") or "").lower()
    head = first[:512].lstrip().lower()
    return "text/html" in ctype or head.startswith((b"<!doctype html", b"<html"))


def _confirm_url(page: bytes, cookies: http.cookiejar.CookieJar, url: str, file_id: str) -> str | None:
    """Where Google Drive's confirmation page says the file is (None: the page is not one)."""
    for c in cookies:
        if c.name.startswith("download_warning"):
            return GDRIVE_ENTRY.format(id=urllib.parse.quote(file_id)) + f"&confirm={urllib.parse.quote(c.value)}"
    text = page.decode("utf-8", "replace")
    form = re.search(r'<form[^>]*id="download-form"[^>]*>(.*?)</form>', text, re.S | re.I)
    if form:
        action = re.search(r'action="([^"]+)"', form.group(0))
        fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.group(1)))
        if action:
            target = urllib.parse.urljoin(url, html.unescape(action.group(1)))
            return target + "?" + urllib.parse.urlencode({k: html.unescape(v) for k, v in fields.items()})
    m = re.search(r"confirm=([0-9A-Za-z_-]+)", text)  # the oldest page: a link with the token
    if m:
        return GDRIVE_ENTRY.format(id=urllib.parse.quote(file_id)) + f"&confirm={m.group(1)}"
    return None


def _title(page: bytes) -> str:
    m = re.search(rb"<title>(.*?)</title>", page, re.S | re.I)
    return html.unescape(m.group(1).decode("utf-8", "replace")).strip()[:80] if m else ""


def _open(opener, url: str, offset: int, timeout: float):
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        return opener.open(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the part file is already whole (or longer than the file)
            return None
        raise DownloadError(f"{_host(url)} answered HTTP {exc.code} {exc.reason} for {url}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot reach {_host(url)} ({reason})") from None


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or url


def download(
    url: str, dest: Path, max_bytes: int, progress: Progress | None = None, gdrive_id: str = "", timeout: float = 60.0
) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), at most ``max_bytes``; returns ``dest``.

    With ``gdrive_id``, ``url`` is Google Drive's entry point and a confirmation page is followed.
    :class:`DownloadError` (one line) on any failure; a ``.part`` file stays for the next attempt
    unless what arrived cannot be the file (a web page, too large), which is deleted.
    """
    _check_url(url)
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    opener = _opener()
    cookies = next(h.cookiejar for h in opener.handlers if isinstance(h, urllib.request.HTTPCookieProcessor))
    offset = part.stat().st_size if part.is_file() else 0
    resp = _open(opener, url, offset, timeout)
    if resp is None:
        os.replace(part, dest)
        return dest
    for _ in range(3):  # Google Drive: the confirmation page, then the file
        first = resp.read(min(CHUNK, 64 * 1024)) if resp.status != 206 else b""
        if resp.status == 206 or not _is_web_page(resp, first):
            break
        page = first + resp.read(MAX_PAGE)
        resp.close()
        target = _confirm_url(page, cookies, resp.geturl(), gdrive_id) if gdrive_id else None
        if target is None:
            title = _title(page)
            _discard(part)
            raise DownloadError(
                f"{_host(url)} sent a web page{f' ({title!r})' if title else ''} instead of the checkpoint "
                "(a quota, sign-in or error page); nothing was installed"
            )
        _check_url(target)
        resp = _open(opener, target, offset, timeout)
        if resp is None:
            os.replace(part, dest)
            return dest
    else:
        raise DownloadError(f"{_host(url)} kept answering with confirmation pages; nothing was installed")
    with resp:
        if resp.status != 206:  # a whole file: start from zero (the server ignored the range)
            offset = 0
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        if total is not None and total > max_bytes:
            _discard(part)
            raise DownloadError(
                f"the file at {_host(url)} is {total:,} bytes, more than the {max_bytes:,} this model may take; "
                "nothing was installed"
            )
        _stream(resp, part, offset, first if resp.status != 206 else b"", total, max_bytes, progress, url)
    got = part.stat().st_size
    if total is not None and got < total:
        raise DownloadError(
            f"the download stopped after {got:,} of {total:,} bytes; run the same command again to resume it"
        )
    os.replace(part, dest)
    return dest


def _stream(resp, part: Path, offset: int, first: bytes, total, max_bytes: int, progress, url: str) -> None:
    start, done = time.monotonic(), offset
    with open(part, "ab" if offset else "wb") as out:
        chunk = first
        while True:
            if chunk:
                done += len(chunk)
                if done > max_bytes:
                    out.close()
                    _discard(part)
                    raise DownloadError(
                        f"the file at {_host(url)} passed {max_bytes:,} bytes, more than this model may take; "
                        "nothing was installed"
                    )
                out.write(chunk)
                if progress is not None:
                    rate = (done - offset) / max(time.monotonic() - start, 1e-6)
                    eta = (total - done) / rate if total is not None and rate > 0 else None
                    progress(done, total, eta)
            try:
                chunk = resp.read(CHUNK)
            except (http.client.IncompleteRead, OSError) as exc:  # a cut connection: keep what arrived
                if isinstance(exc, http.client.IncompleteRead) and exc.partial:
                    out.write(exc.partial)
                out.flush()
                raise DownloadError(
                    f"the connection to {_host(url)} broke after {part.stat().st_size:,} bytes; run the same "
                    "command again to resume it"
                ) from None
            if not chunk:
                break


def _discard(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def format_progress(done: int, total: int | None, eta: float | None) -> str:
    """``  42.0%  61.2 / 145.7 MB  ETA 1 min 03 s`` (without a total: the bytes so far)."""
    mb = done / 1e6
    if not total:
        return f"{mb:8.1f} MB"
    eta_text = ""
    if eta is not None:
        m, s = divmod(int(eta + 0.5), 60)
        eta_text = f"  ETA {m} min {s:02d} s" if m else f"  ETA {s} s"
    return f"{100 * done / total:5.1f}%  {mb:.1f} / {total / 1e6:.1f} MB{eta_text}"

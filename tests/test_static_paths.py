"""reactor.static.paths: the syntax rules of request paths, without a disk."""

import pytest

from reactor.http.errors import HTTPError
from reactor.static.paths import resolve


def status_of(target, hidden=False):
    try:
        resolve(target, hidden)
    except HTTPError as error:
        return error.status
    return 200


@pytest.mark.parametrize("target", [
    "/../etc/passwd",
    "/a/../../etc/passwd",
    "/%2e%2e/etc/passwd",
    "/%2E%2E/etc/passwd",
    "/.%2e/etc/passwd",
    "/%2e./etc/passwd",
    "/..%2fetc%2fpasswd",
    "/..%2Fetc/passwd",
    "/a/..%2f..%2f..%2fetc/passwd",
    "/..",
    "/.",
    "/a/./b",
    "/%2e",
    "/..\\etc\\passwd",
    "/a%5c..%5c..%5cetc%5cpasswd",
    "/a%5Cb",
    "/.git/config",
    "/a/.env",
    "/%2egit/config",
])
def test_traversal_and_hidden_are_404(target):
    assert status_of(target) == 404


@pytest.mark.parametrize("target", [
    "/%00",
    "/a%00.txt",
    "/a\0b",
    "/%zz",
    "/%4",
    "/abc%",
    "/%c0%ae%c0%ae/etc/passwd",     # overlong '.', not UTF-8
    "/%c0%af",                       # overlong '/'
    "/%ff",
    "*",
    "example.com:443",
    "",
])
def test_malformed_paths_are_400(target):
    assert status_of(target) == 400


def test_decoding_happens_once():
    route = resolve("/%252e%252e/x")
    assert route.segments == ("%2e%2e", "x")


def test_encoded_slashes_cannot_make_an_absolute_path():
    route = resolve("/%2fetc%2fpasswd")
    assert route.rel == "etc/passwd"
    assert resolve("/%2F%2Fetc/passwd").rel == "etc/passwd"


def test_empty_segments_are_dropped_and_redirects_stay_local():
    route = resolve("//evil.com")
    assert route.rel == "evil.com"
    assert route.slash_location() == "/evil.com/"
    assert resolve("///evil.com//x?q").slash_location() == "/evil.com/x/?q"


def test_slash_location_keeps_query_and_reencodes():
    route = resolve("/caf%C3%A9%20dir?a=1&b=%20")
    assert route.segments == ("café dir",)
    assert not route.slash
    assert route.slash_location() == "/caf%C3%A9%20dir/?a=1&b=%20"
    assert route.url_path == "/café dir/"


def test_root_and_trailing_slash():
    root = resolve("/")
    assert root.rel == "" and root.slash and root.url_path == "/"
    assert resolve("/a/").slash and not resolve("/a").slash


def test_absolute_form_is_reduced_to_its_path():
    route = resolve("http://example.com/a/b.txt?x=1")
    assert route.rel == "a/b.txt" and route.query == "x=1"
    assert resolve("HTTPS://example.com").rel == ""


def test_hidden_allows_dotfiles_but_never_dot_segments():
    assert status_of("/.well-known/x", hidden=True) == 200
    assert status_of("/%2e%2e/x", hidden=True) == 404
    assert status_of("/./x", hidden=True) == 404


def test_query_is_not_decoded_or_checked():
    assert resolve("/a?%zz%00").query == "%zz%00"

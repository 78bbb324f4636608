"""Sitemap documents: urlset, Google News sitemap and sitemap index (test_sitemaps)."""

from __future__ import annotations

SM = "http://www.sitemaps.org/schemas/sitemap/0.9"
NEWS = "http://www.google.com/schemas/sitemap-news/0.9"
XML = "application/xml"


def urlset(*urls: str | tuple[str, str], news: str = "") -> bytes:
    """<url>s from links, or (link, lastmod) pairs."""
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{SM}"{news}>']
    for url in urls:
        loc, lastmod = url if isinstance(url, tuple) else (url, None)
        mod = f"<lastmod>{lastmod}</lastmod>" if lastmod else ""
        parts.append(f"<url><loc>{loc}</loc>{mod}</url>")
    parts.append("</urlset>")
    return "\n".join(parts).encode()


def index(*children: str | tuple[str, str]) -> bytes:
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="{SM}">']
    for child in children:
        loc, lastmod = child if isinstance(child, tuple) else (child, None)
        mod = f"<lastmod>{lastmod}</lastmod>" if lastmod else ""
        parts.append(f"<sitemap><loc>{loc}</loc>{mod}</sitemap>")
    parts.append("</sitemapindex>")
    return "\n".join(parts).encode()


def news_sitemap(items: list[dict[str, str]]) -> bytes:
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{SM}" xmlns:news="{NEWS}">']
    for item in items:
        lastmod = f"<lastmod>{item['lastmod']}</lastmod>" if "lastmod" in item else ""
        parts.append(
            f"<url><loc>{item['loc']}</loc>{lastmod}<news:news><news:publication>"
            f"<news:name>The Example Ledger</news:name>"
            f"<news:language>{item.get('language', 'en')}</news:language></news:publication>"
            f"<news:publication_date>{item['date']}</news:publication_date>"
            f"<news:title>{item['title']}</news:title>"
            f"<news:keywords>{item.get('keywords', '')}</news:keywords></news:news></url>"
        )
    parts.append("</urlset>")
    return "\n".join(parts).encode()

"""The clinic console: web pages for the treatment room, the clinician and the billing office.

Served by ``traction serve`` itself. The pages are shells that call the same JSON API as any other
client, authenticated by a console session cookie instead of a bearer token, so the same role
matrix and the same safety rules decide everything a page shows or does.
"""

"""Image host: upload, share, list and delete images.

__main__     the command line: serve, up, worker(s), nginx-config, check, reindex, settings
config       the settings table: name, default, help; parsed and validated once
errors       error types (status + code) and the JSON error body
server       the only module importing http.server: request → router → response
routing      the route matcher: match / wrong method (405 + Allow) / none (404)
api          the route table and thin handlers
openapi      the OpenAPI description, built from the route table
uploads      the only module importing python_multipart: streaming bodies to disk
images       the only module importing PIL: detect, verify, scrub, thumbnail
store        image files: names, temporary files, atomic writes, deletes
catalog      all SQL: the SQLite catalog, numbered migrations
rights       admin key, delete tokens, UPLOADS/LISTING policies
maintenance  check and reindex: repair drift between catalog and disk
workers      the supervisor of worker processes (and nginx)
front        the nginx config template, rendering it, running nginx (`up`)
logs         logging to the console and a shared, rotated app.log
web/         the frontend: pages, css/, js/, img/
"""

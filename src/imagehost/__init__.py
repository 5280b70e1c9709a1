"""Image host: upload, share, list and delete images.

__main__     the command line, and where the application is assembled (serve, worker, up …)
config       the settings table: name, default, help; parsed and validated once
errors       the error-code catalogue: one class per code, with status and sentence
headers      security and caching headers per kind of response, for serve and nginx alike
messages     Request, Response and body framing: what server and api share
server       the only module importing http.server: bytes → Request → handler → Response
routing      the route matcher: match / wrong method (405 + Allow) / none (404)
api          the route table and thin handlers: parse the request, call the domain, answer
openapi      the OpenAPI description, built from the route table
uploads      the only module importing python_multipart: size limits, spooling the file
ingest       the pipeline: bytes → stored original + thumbnail + catalog row + delete token
images       the only module importing PIL: detect, verify, scrub dispatch, thumbnail
formats/     the formats registry (name, ext, type, sniffer) and one module per container
store/       the Store interface; local files; S3 (the only importer of obstore)
catalog/     the Catalog interface; SQLite; PostgreSQL (the only SQL, numbered migrations)
rights       admin key, delete tokens, UPLOADS/LISTING policies
maintenance  check and reindex: repair drift between catalog and store
sweeper      removes expired images and what failed deletes left, one sweeper at a time
migrate      moving an installation: the image folder into a bucket, SQLite into PostgreSQL
backup       backup and restore: a consistent copy of a running installation, into an empty one
expiry       how long an upload lives: expires_in, DEFAULT_EXPIRY, MAX_EXPIRY
limits       per-client upload limits in `serve` (nginx applies the same rule in `up`)
albums       albums through the API: several images under one link
pages        share and album pages with link previews, oEmbed, the ShareX file
views        images and albums as clients see them: their JSON and every URL handed out
workers      the supervisor of worker processes (and nginx)
front        the nginx config template, rendering it, running nginx (`up`)
logs         logging to the console and a shared, rotated app.log
web/         the frontend: pages, css/, js/, img/
"""

#!/usr/bin/env node
// Real-client interop: tus-js-client uploads a file that is not media with the README's
// onShouldRetry (roughy_retry.mjs). The first PATCH is refused 409 unsupported_media_type; the
// client must not retry it, and onError must be able to show that code.
//
// Usage: node tus_js_rejected.mjs <upload_url> <api_key> <file>
// Prints one JSON line: {"ok":true,"code":"…","patches":N,"heads":M} (exit 0), or
// {"ok":false,"error":"…"} (exit 1). Driven by tests/contract/interop.rs.

import { readFileSync } from 'node:fs'

import { onShouldRetry, roughyCode } from './roughy_retry.mjs'

function finish(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(result.ok ? 0 : 1)
}

const [uploadUrl, apiKey, file] = process.argv.slice(2)
const tus = await import('tus-js-client').catch((e) =>
  finish({ ok: false, error: `cannot load tus-js-client: ${e.message}` }),
)
const data = readFileSync(file)
let patches = 0
let heads = 0
setTimeout(() => finish({ ok: false, error: 'timed out' }), 30_000)
const upload = new tus.Upload(data, {
  uploadUrl,
  headers: { Authorization: `Bearer ${apiKey}` },
  chunkSize: 64 * 1024,
  retryDelays: [0, 100, 200],
  onShouldRetry,
  onBeforeRequest(req) {
    if (req.getMethod() === 'PATCH') patches += 1
    if (req.getMethod() === 'HEAD') heads += 1
  },
  onError(err) {
    finish({ ok: true, code: roughyCode(err), patches, heads })
  },
  onSuccess() {
    finish({ ok: false, error: 'the upload of a file that is not media succeeded' })
  },
})
upload.start()

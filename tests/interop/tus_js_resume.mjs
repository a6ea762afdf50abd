#!/usr/bin/env node
// Real-client interop: tus-js-client (Node) uploads to a pre-allocated Roughy upload URL,
// is aborted midway (mid-PATCH, the connection is torn down), then a NEW tus.Upload with the
// same uploadUrl must HEAD the server, resume from the offset it reports and finish.
//
// Usage: node tus_js_resume.mjs <upload_url> <api_key> <file>
// Prints exactly one JSON line on stdout:
//   {"ok":true,"resumed_from":N,"patches":K,...}   (exit 0)
//   {"ok":false,"error":"..."}                      (exit 1)
// Driven by tests/contract/interop.rs. Install once: npm ci --prefix tests/interop

import { readFileSync } from 'node:fs'

const CHUNK_SIZE = 64 * 1024
// Abort once progress passes ~40 %. tus-js-client reports progress early in each PATCH body
// (throttled) and after each 204, so 0.42 of the file normally lands inside the third 64 KiB
// PATCH: the abort then destroys an in-flight PATCH (how much of its body reached the server
// is up to the socket), not just the gap between two chunks.
const ABORT_AT = 0.42
const OVERALL_TIMEOUT_MS = 60_000

// Every request sent and every answer received, in order (see `recorder`).
const trace = []

function finish(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(result.ok ? 0 : 1)
}

function fail(error, extra = {}) {
  finish({ ok: false, error: String(error), ...extra })
}

// Records every request the client sends and every answer it gets, through the public hooks.
function recorder(trace, run) {
  return {
    onBeforeRequest(req) {
      trace.push({
        run,
        method: req.getMethod(),
        upload_offset: req.getHeader('Upload-Offset') ?? null,
        override: req.getHeader('X-HTTP-Method-Override') ?? null,
        tus_resumable: req.getHeader('Tus-Resumable') ?? null,
      })
    },
    onAfterResponse(req, res) {
      trace.push({
        run,
        response_to: req.getMethod(),
        status: res.getStatus(),
        upload_offset: res.getHeader('Upload-Offset') ?? null,
        upload_length: res.getHeader('Upload-Length') ?? null,
      })
    },
  }
}

async function main() {
  const [uploadUrl, apiKey, file] = process.argv.slice(2)
  if (!uploadUrl || !apiKey || !file) {
    fail('usage: node tus_js_resume.mjs <upload_url> <api_key> <file>')
  }

  let tus
  try {
    tus = await import('tus-js-client')
  } catch (e) {
    fail(`cannot load tus-js-client (run \`npm ci --prefix tests/interop\`): ${e.message}`)
  }

  const timer = setTimeout(
    () => fail(`timed out after ${OVERALL_TIMEOUT_MS} ms`, { trace }),
    OVERALL_TIMEOUT_MS,
  )
  const data = readFileSync(file)
  const size = data.length
  const common = {
    uploadUrl,
    headers: { Authorization: `Bearer ${apiKey}` },
    chunkSize: CHUNK_SIZE,
    retryDelays: [0, 200, 500, 1000],
    uploadSize: size,
  }

  // Run 1: start, abort once progress passes ABORT_AT of the file.
  const run1 = await new Promise((resolve, reject) => {
    let aborted = false
    const upload = new tus.Upload(data, {
      ...common,
      ...recorder(trace, 1),
      onProgress(bytesSent, bytesTotal) {
        if (!aborted && bytesSent >= bytesTotal * ABORT_AT) {
          aborted = true
          upload.abort(false).then(() => resolve({ abortedAtProgress: bytesSent }), reject)
        }
      },
      onSuccess() {
        if (!aborted) reject(new Error('run 1 finished before it could be aborted'))
      },
      onError(err) {
        reject(new Error(`run 1: ${err.message}`))
      },
    })
    upload.start()
  })
  const acked1 = trace
    .filter((e) => e.run === 1 && e.response_to === 'PATCH' && e.status === 204)
    .map((e) => Number(e.upload_offset))
  const lastAcked1 = acked1.length ? Math.max(...acked1) : 0
  const patches1 = trace.filter((e) => e.run === 1 && e.method === 'PATCH').length
  const sentUpTo1 = run1.abortedAtProgress
  const answered1 = trace.filter((e) => e.run === 1 && e.response_to === 'PATCH').length
  const abortedMidPatch = answered1 < patches1

  // Run 2: a brand-new Upload on the same URL; it must HEAD and resume from the server offset.
  await new Promise((resolve, reject) => {
    const upload = new tus.Upload(data, {
      ...common,
      ...recorder(trace, 2),
      onSuccess() {
        resolve()
      },
      onError(err) {
        reject(new Error(`run 2: ${err.message}`))
      },
    })
    upload.start()
  })
  clearTimeout(timer)

  const run2 = trace.filter((e) => e.run === 2)
  const run2Requests = run2.filter((e) => e.method)
  if (run2Requests.length === 0 || run2Requests[0].method !== 'HEAD') {
    throw new Error('run 2 did not start with HEAD')
  }
  const head = run2.find((e) => e.response_to === 'HEAD' && e.status === 200)
  if (!head) throw new Error('run 2: no 200 answer to HEAD')
  const headOffset = Number(head.upload_offset)
  if (Number(head.upload_length) !== size) {
    throw new Error(`HEAD Upload-Length ${head.upload_length} != file size ${size}`)
  }
  const patches2 = run2Requests.filter((e) => e.method === 'PATCH')
  if (patches2.length === 0) throw new Error('run 2 sent no PATCH')
  const resumedFrom = Number(patches2[0].upload_offset)
  if (!(resumedFrom > 0)) throw new Error(`run 2 first PATCH at offset ${resumedFrom}, not > 0`)
  if (resumedFrom !== headOffset) {
    throw new Error(`run 2 first PATCH at ${resumedFrom} but HEAD said ${headOffset}`)
  }
  if (headOffset < lastAcked1) {
    throw new Error(`HEAD offset ${headOffset} < last acknowledged offset ${lastAcked1}`)
  }
  if (headOffset > sentUpTo1) {
    throw new Error(`HEAD offset ${headOffset} > bytes the client had sent (${sentUpTo1})`)
  }
  const last = run2.filter((e) => e.response_to === 'PATCH').at(-1)
  if (!last || last.status !== 204 || Number(last.upload_offset) !== size) {
    throw new Error(`last PATCH answer ${JSON.stringify(last)} is not 204 at ${size}`)
  }
  const unexpected = run2.filter((e) => e.response_to && e.status !== 200 && e.status !== 204)

  finish({
    ok: true,
    resumed_from: resumedFrom,
    patches: patches2.length,
    size,
    run1_patches: patches1,
    run1_last_acked: lastAcked1,
    run1_sent_up_to: sentUpTo1,
    run1_aborted_mid_patch: abortedMidPatch,
    head_offset: headOffset,
    head_offsets_run2: run2
      .filter((e) => e.response_to === 'HEAD' && e.upload_offset != null)
      .map((e) => Number(e.upload_offset)),
    non_2xx_in_run2: unexpected,
  })
}

main().catch((e) => fail(e?.message ?? e, { trace }))

// The test page's script (tests/browser/page/index.html): uploads the chosen file to a Roughy
// upload URL, as a customer's page would, with tus-js-client (the `tus` global of its browser
// bundle) or Uppy (`@uppy/core` + `@uppy/tus`, from the `uppy` bundle), both with the
// README's retry rule (tests/interop/roughy_retry.mjs, served next to this page). It shows
// what happens in #status: `Ready`, `Uploading`, `Aborted at N of M bytes`, `Done`, or
// `Error: <Roughy's error code, else the client's message>`.
//
// Query string:
//   client=tus|uppy   which client (tus by default)
//   upload=<url>      the upload URL the backend created (POST /v1/assets)
//   key=<sk_...>      the API key, sent as `Authorization: Bearer`; absent for a direct upload
//   abort_at=<0..1>   tus only: abort (upload.abort()) once this fraction of the file was sent;
//                     Resume then starts a new Upload on the same URL
//   chunk=<bytes>     chunk size (64 KiB by default)
//
// Every request the client sends and every answer it gets is kept in `window.trace`, every
// progress event in `window.progressEvents`, for the test to read.

import { onShouldRetry, roughyCode } from '/roughy_retry.mjs'

const params = new URLSearchParams(window.location.search)
const client = params.get('client') ?? 'tus'
const uploadUrl = params.get('upload')
const key = params.get('key')
const abortAt = params.has('abort_at') ? Number(params.get('abort_at')) : null
const chunkSize = Number(params.get('chunk') ?? 64 * 1024)
const headers = key ? { Authorization: `Bearer ${key}` } : {}
const retryDelays = [0, 200, 500, 1000]

const $ = (id) => document.getElementById(id)
const trace = []
const progressEvents = []
window.trace = trace
window.progressEvents = progressEvents

function show(status) {
  $('status').textContent = status
}

function showProgress(sent, total) {
  progressEvents.push([sent, total])
  $('progress').value = total ? (100 * sent) / total : 0
  $('sent').textContent = String(sent)
}

function showError(err) {
  show(`Error: ${roughyCode(err) ?? err.message}`)
}

// Records what the client sends and gets, through tus-js-client's public hooks.
function recorder(run) {
  return {
    onBeforeRequest(req) {
      trace.push({
        run,
        method: req.getMethod(),
        upload_offset: req.getHeader('Upload-Offset') ?? null,
        authorization: req.getHeader('Authorization') != null,
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

// Run 1 is aborted once `abort_at` of the file was sent (when set); run 2 is a brand-new
// Upload on the same URL, which finds the server's offset with HEAD.
function tusUpload(file, run) {
  let aborted = false
  const upload = new window.tus.Upload(file, {
    uploadUrl,
    headers,
    chunkSize,
    retryDelays,
    onShouldRetry,
    ...recorder(run),
    onProgress(sent, total) {
      showProgress(sent, total)
      if (run === 1 && abortAt !== null && !aborted && sent >= total * abortAt) {
        aborted = true
        upload.abort().then(() => {
          show(`Aborted at ${sent} of ${total} bytes`)
          $('resume').disabled = false
        }, showError)
      }
    },
    onError: showError,
    onSuccess() {
      show('Done')
    },
  })
  show('Uploading')
  upload.start()
}

// The README's Uppy lines: the pre-created upload URL through the file's `tus.uploadUrl`.
async function uppyUpload(file) {
  const { Uppy, Tus } = await import('/vendor/uppy.min.mjs')
  const uppy = new Uppy({ autoProceed: false })
  uppy.use(Tus, {
    headers,
    chunkSize,
    retryDelays,
    onShouldRetry: (err, retryAttempt, options, next) => onShouldRetry(err),
    ...recorder(1),
  })
  uppy.on('upload-progress', (_file, progress) => {
    showProgress(progress.bytesUploaded, progress.bytesTotal)
  })
  uppy.on('upload-error', (_file, err) => showError(err))
  const id = uppy.addFile({ name: file.name, type: file.type, data: file, source: 'Local' })
  uppy.setFileState(id, { tus: { uploadUrl } })
  show('Uploading')
  const result = await uppy.upload()
  if (result && result.successful.length === 1 && result.failed.length === 0) show('Done')
}

function chosenFile() {
  const file = $('file').files[0]
  if (!file) show('Error: no file chosen')
  return file
}

$('start').addEventListener('click', () => {
  const file = chosenFile()
  if (!file) return
  $('start').disabled = true
  if (client === 'uppy') {
    uppyUpload(file).catch(showError)
  } else {
    tusUpload(file, 1)
  }
})

$('resume').addEventListener('click', () => {
  const file = chosenFile()
  if (!file) return
  $('resume').disabled = true
  tusUpload(file, 2)
})

if (!uploadUrl) {
  show('Error: no upload URL in the query string')
} else if (!window.tus) {
  show('Error: tus-js-client did not load')
} else {
  $('start').disabled = false
  show('Ready')
}

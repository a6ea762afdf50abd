// The retry rule the README gives tus-js-client and Uppy users, as code the interop tests run:
// stop on Roughy's refusals that a retry cannot fix and surface their code; otherwise retry as
// tus-js-client does by default (no answer, 409 offset conflicts, 423, 5xx).

// Refusals a retry cannot fix.
export const FINAL = new Set([
  'unsupported_media_type',
  'upload_gone',
  'upload_expired',
  'upload_terminated',
  'asset_deleted',
  'upload_length_exceeded',
  'first_chunk_too_small',
])

// The error code of a Roughy answer: the `Upload-Gone-Reason` of a 410 (a HEAD has no body),
// else the JSON body's `error.code`.
export function roughyCode(err) {
  const res = err.originalResponse
  if (!res) return null
  const gone = res.getHeader('Upload-Gone-Reason')
  if (gone) return gone
  try {
    return JSON.parse(res.getBody()).error.code
  } catch {
    return null
  }
}

// tus-js-client's `onShouldRetry(err, retryAttempt, options)`.
export function onShouldRetry(err) {
  const code = roughyCode(err)
  if (code && FINAL.has(code)) return false
  const status = err.originalResponse ? err.originalResponse.getStatus() : 0
  return status === 0 || status === 409 || status === 423 || status >= 500
}

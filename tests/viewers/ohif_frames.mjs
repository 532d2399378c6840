// Fetches one WADO-RS frame the way OHIF's image loader does and parses the answer with
// the loader's own published code (@cornerstonejs/dicom-image-loader, wadors):
// the Accept header is read out of its loadImage.js, the multipart body goes through its
// extractMultipart, and the transfer syntax it would decode with comes from its
// getTransferSyntaxForContentType. The XMLHttpRequest is node's fetch here.
//
// Usage: node ohif_frames.mjs FRAME_URL [FRAME_URL ...]   (prints a JSON list: for each,
// status, transferSyntax, contentType, pixelData as base64)
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import extractMultipart from '@cornerstonejs/dicom-image-loader/wadors/extractMultipart';
import { getTransferSyntaxForContentType } from '@cornerstonejs/dicom-image-loader/wadors/loadImage';

const require = createRequire(import.meta.url);
const loaderDir = require.resolve('@cornerstonejs/dicom-image-loader/wadors/loadImage')
  .replace(/loadImage\.js$/, '');
const source = readFileSync(`${loaderDir}loadImage.js`, 'utf8');
const match = source.match(/const mediaType = '([^']+)';/);
if (!match) {
  console.error('no default mediaType found in the loader\'s loadImage.js');
  process.exit(2);
}
const results = [];
for (const url of process.argv.slice(2)) {
  const response = await fetch(url, { headers: { Accept: match[1] } });
  const body = new Uint8Array(await response.arrayBuffer());
  const contentType = response.headers.get('Content-Type') || 'application/octet-stream';
  const out = { url, status: response.status, accept: match[1], responseContentType: contentType };
  if (response.ok) {
    const extracted = extractMultipart(contentType, body);
    out.contentType = extracted.contentType;
    out.transferSyntax = getTransferSyntaxForContentType(extracted.contentType);
    out.pixelData = Buffer.from(extracted.pixelData).toString('base64');
  }
  results.push(out);
}
process.stdout.write(JSON.stringify(results));

// Runs a Parametric Map the node wrote through the code OHIF's pmap extension uses to
// overlay it: Cornerstone's volume slice order for the referenced series
// (utilities.sortImageIdsAndGetSpacing) and the Cornerstone3D adapter
// adaptersPMAP.Cornerstone3D.ParametricMap.generateToolState, whose pixelData OHIF
// copies into a volume derived from that series (getScalarData().set(pixelData)).
// The pmap extension itself (@ohif/extension-cornerstone-dicom-pmap) is not on the npm
// registry this project uses, so its few lines around those two calls are not run here;
// the instances go through OHIF's real metadata store and provider (viewer_env.mjs).
//
// Usage: node ohif_pmap.mjs PMAP.dcm SOURCE.dcm [SOURCE.dcm ...]   (prints JSON)
import { readFileSync } from 'node:fs';

import {
  csAdapters, csCore, naturalize, registerSources, version, writeJson,
} from './viewer_env.mjs';

const [pmapPath, ...sourcePaths] = process.argv.slice(2);
if (!pmapPath || sourcePaths.length === 0) {
  console.error('usage: node ohif_pmap.mjs PMAP.dcm SOURCE.dcm [SOURCE.dcm ...]');
  process.exit(2);
}
const sources = sourcePaths.map(naturalize);
// DICOMweb-style imageIds: Cornerstone sorts such a volume along the scan axis.
const imageIds = [...registerSources(sources, 'wadors').values()].flat();
const out = {
  versions: { '@cornerstonejs/adapters': version('@cornerstonejs/adapters'),
              '@cornerstonejs/core': version('@cornerstonejs/core') },
  error: null,
  slices: [],
};
try {
  const { sortedImageIds } = csCore.utilities.sortImageIdsAndGetSpacing(imageIds);
  const bytes = readFileSync(pmapPath);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const { pixelData } = await csAdapters.adaptersPMAP.Cornerstone3D.ParametricMap
    .generateToolState(sortedImageIds, buffer, csCore.metaData);
  const plane = csCore.metaData.get('imagePlaneModule', sortedImageIds[0]);
  const sliceLength = plane.rows * plane.columns;
  out.pixelDataLength = pixelData.length;
  out.volumeLength = sliceLength * sortedImageIds.length;
  // What lands on each slice of the volume: the position of its maximum.
  out.slices = sortedImageIds.map((imageId, k) => {
    const { sopInstanceUID } = csCore.metaData.get('generalImageModule', imageId);
    const slice = pixelData.subarray(k * sliceLength, (k + 1) * sliceLength);
    let peak = 0;
    for (let i = 1; i < slice.length; i++) if (slice[i] > slice[peak]) peak = i;
    return { SOPInstanceUID: sopInstanceUID, peakRow: Math.floor(peak / plane.columns),
             peakColumn: peak % plane.columns, peakValue: slice.length ? slice[peak] : null };
  });
} catch (err) {
  out.error = `${err?.name}: ${err?.message}`;
  out.stack = String(err?.stack ?? "").split("\n").slice(0, 14).join("\n");
}
writeJson(JSON.stringify(out, null, 1) + '\n');

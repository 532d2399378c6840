// What both harnesses share: the DOM shim, the real packages loaded once, the OHIF
// SR extension's UMD loaded with its browser-only externals stubbed, DICOM files read
// by dcmjs, and source instances registered with OHIF's metadata store and provider.
// See ohif_sr.mjs for what is real and what is shimmed.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import Module from 'node:module';

const require = createRequire(import.meta.url);
require('./dom-shim.cjs');
// stdout carries only the JSON result: the packages' own console output goes to stderr.
export const writeJson = process.stdout.write.bind(process.stdout);
console.log = console.info = console.debug = (...args) => console.error(...args);

const dcmjsModule = await import('dcmjs');
export const dcmjs = dcmjsModule.default ?? dcmjsModule;
export const csAdapters = await import('@cornerstonejs/adapters');
export const csCore = await import('@cornerstonejs/core');
export const csTools = await import('@cornerstonejs/tools');
const glMatrix = require('gl-matrix');

const stubs = {
  '@ohif/extension-cornerstone': {
    Enums: { CORNERSTONE_3D_TOOLS_SOURCE_NAME: 'Cornerstone3DTools',
             CORNERSTONE_3D_TOOLS_SOURCE_VERSION: '0.1' },
  },
  '@ohif/i18n': { __esModule: true, default: { t: (key) => key } },
  '@ohif/ui-next': {},
  '@ohif/core/src/contextProviders/SystemProvider': { useSystem: () => ({}) },
};
const real = {
  '@cornerstonejs/adapters': csAdapters,
  '@cornerstonejs/core': csCore,
  '@cornerstonejs/tools': csTools,
  'gl-matrix': glMatrix,
};
// The UMD bundles require() their externals; hand them the one ESM instance of each
// Cornerstone package (a second CommonJS copy would keep its own metadata providers).
const originalLoad = Module._load;
Module._load = function load(request, parent, isMain) {
  if (request in real) return real[request];
  if (request in stubs) return stubs[request];
  return originalLoad.call(this, request, parent, isMain);
};
export const ohifCore = require('@ohif/core');
real['@ohif/core'] = ohifCore;
const srExtension = require('@ohif/extension-cornerstone-dicom-sr');
Module._load = originalLoad;
export const extension = srExtension.default ?? srExtension;

export function naturalize(path) {
  const bytes = readFileSync(path);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const dicomDict = dcmjs.data.DicomMessage.readFile(buffer);
  const dataset = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dicomDict.dict);
  dataset._meta = dcmjs.data.DicomMetaDictionary.namifyDataset(dicomDict.meta);
  return dataset;
}

export function safe(fn) {
  try {
    return { value: fn(), error: null };
  } catch (err) {
    return { value: null, error: `${err?.name}: ${err?.message}` };
  }
}

export const version = (name) => JSON.parse(readFileSync(
  new URL(`./node_modules/${name}/package.json`, import.meta.url), 'utf8')).version;

// OHIF's cornerstone extension registers its metadata provider like this.
const { DicomMetadataStore, classes } = ohifCore;
export const { MetadataProvider } = classes;
csCore.metaData.addProvider(MetadataProvider.get.bind(MetadataProvider), 9999);

/** Put source instances in OHIF's store; SOPInstanceUID -> imageIds (one per frame). */
export function registerSources(sources, scheme) {
  const imageIds = new Map();
  for (const ds of sources) {
    if (ds.PixelData) delete ds.PixelData; // metadata only, as OHIF's store holds
    DicomMetadataStore.addInstances([ds], true);
    const frames = Number(ds.NumberOfFrames || 1);
    const ids = [];
    for (let frame = 1; frame <= frames; frame++) {
      // wadors imageIds are DICOMweb URLs: OHIF reads the UIDs back out of the path.
      const imageId = scheme === 'wadors'
        ? `wadors:http://localhost/dicomweb/studies/${ds.StudyInstanceUID}/series/`
          + `${ds.SeriesInstanceUID}/instances/${ds.SOPInstanceUID}/frames/${frame}`
        : `${scheme}:file://${ds.SOPInstanceUID}` + (frames > 1 ? `&frame=${frame}` : '');
      MetadataProvider.addImageIdToUIDs(imageId, {
        StudyInstanceUID: ds.StudyInstanceUID,
        SeriesInstanceUID: ds.SeriesInstanceUID,
        SOPInstanceUID: ds.SOPInstanceUID,
        frameNumber: frames > 1 ? frame : undefined,
      });
      ids.push(imageId);
    }
    imageIds.set(ds.SOPInstanceUID, ids);
  }
  return imageIds;
}

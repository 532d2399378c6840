// Runs OHIF's DICOMweb data source (the PUBLISHED @ohif/extension-default UMD bundle, its
// "dicomweb" dataSourcesModule) against a DICOMweb server, the path OHIF's study list and
// viewer go through:
//   - query.studies.search (the study list: QIDO-RS /studies through its mapParams, then
//     its processResults into the list's rows);
//   - query.series.search (QIDO-RS /studies/{s}/series, processSeriesResults);
//   - retrieve.series.metadata (the viewer's load: with enableStudyLazyLoad a QIDO-RS
//     series search then WADO-RS /series/{se}/metadata per series, otherwise
//     /studies/{s}/metadata), each instance naturalized with dcmjs, its BulkDataURIs
//     resolved against wadoRoot, its imageIds made and registered with OHIF's
//     MetadataProvider and the instances put in OHIF's DicomMetadataStore;
//   - what OHIF's MetadataProvider then answers Cornerstone for each instance's imageId
//     (imagePlaneModule, imagePixelModule, ...), and one bulk data retrieve
//     (instance.PixelData.retrieveBulkData, OHIF's own resolver).
// HTTP goes through dicomweb-client (the real package) over xhr-shim.cjs (XMLHttpRequest
// over Node's fetch); every request is reported.
//
// Usage: node ohif_datasource.mjs CONFIG_JSON
//   CONFIG_JSON: {"root": "http://host:port/dicomweb", "lazy": true,
//                 "studyFilters": [{...OHIF study list filter values...}],
//                 "studies": [StudyInstanceUID, ...]}
// Prints one JSON object on stdout.
//
// What is NOT the published code (shims), and why: dom-shim.cjs and xhr-shim.cjs (no
// browser under Node); the bundle's browser/UI externals are stubbed ({}):
// @ohif/app, @ohif/ui-next, @ohif/extension-cornerstone, useToolbar, and the
// Cornerstone packages the extension itself imports (its viewports and tools, none
// reached on this path; @ohif/core loads the real @cornerstonejs/core itself); @ohif/i18n
// is t() returning the key. @ohif/core, dcmjs and dicomweb-client are the real packages;
// @ohif/core/src/* subpaths are the same functions taken from @ohif/core's bundle.
// userAuthenticationService has no token (no Authorization header, as OHIF without login).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import Module from 'node:module';

const require = createRequire(import.meta.url);
require('./dom-shim.cjs');
require('./xhr-shim.cjs');
const writeJson = process.stdout.write.bind(process.stdout);
console.log = console.info = console.debug = console.warn = (...a) => console.error(...a);

const ohifCore = require('@ohif/core');
const { utils, classes, DicomMetadataStore } = ohifCore;
const esm = (value) => ({ __esModule: true, default: value });
const externals = {
  '@ohif/core': ohifCore,
  '@ohif/core/src': ohifCore,
  '@ohif/core/src/classes/ImageSet': esm(classes.ImageSet),
  '@ohif/i18n': esm({ t: (key) => key }),
};
for (const name of ['sortInstancesByPosition', 'toNumber', 'isDisplaySetReconstructable',
  'thumbnailNoImageModalities']) {
  externals[`@ohif/core/src/utils/${name}`] = esm(utils[name]);
}
// Its default export and the named ones @ohif/core re-exports as utils.*.
externals['@ohif/core/src/utils/sortStudy'] = {
  ...esm(utils.sortStudy),
  sortStudySeries: utils.sortStudySeries,
  sortStudyInstances: utils.sortStudyInstances,
  sortingCriteria: utils.sortingCriteria,
  seriesSortCriteria: utils.seriesSortCriteria,
  instancesSortCriteria: utils.instancesSortCriteria,
};
const stubbed = new Set(['@ohif/app', '@ohif/ui-next', '@ohif/extension-cornerstone',
  '@ohif/core/src/hooks/useToolbar', '@cornerstonejs/core', '@cornerstonejs/tools',
  '@cornerstonejs/tools/utilities', '@cornerstonejs/dicom-image-loader']);
const originalLoad = Module._load;
Module._load = function load(request, parent, isMain) {
  if (request in externals) return externals[request];
  if (stubbed.has(request)) return {};
  return originalLoad.call(this, request, parent, isMain);
};
const extensionModule = require('@ohif/extension-default');
Module._load = originalLoad;
const extension = extensionModule.default ?? extensionModule;

const config = JSON.parse(process.argv[2] ?? '{}');
if (!config.root) {
  console.error('usage: node ohif_datasource.mjs \'{"root": "http://host:port/dicomweb"}\'');
  process.exit(2);
}
const version = (name) => JSON.parse(readFileSync(
  new URL(`./node_modules/${name}/package.json`, import.meta.url), 'utf8')).version;

// A DICOMweb server as OHIF's docs configure one (non-static: a real QIDO/WADO server).
const dicomweb = extension.getDataSourcesModule().find((m) => m.name === 'dicomweb');
const dataSource = dicomweb.createDataSource({
  name: config.lazy ? 'node-lazy' : 'node-sync',
  wadoUriRoot: config.root,
  qidoRoot: config.root,
  wadoRoot: config.root,
  qidoSupportsIncludeField: true,
  imageRendering: 'wadors',
  thumbnailRendering: 'wadors',
  enableStudyLazyLoad: config.lazy !== false,
  supportsFuzzyMatching: false,
  supportsWildcard: true,
  omitQuotationForMultipartRequest: true,
  bulkDataURI: { enabled: true },
}, { services: { userAuthenticationService: { getAuthorizationHeader: () => ({}) } } });
dataSource.initialize({ params: {}, query: new URLSearchParams() });

async function attempt(fn) {
  try {
    return { value: await fn(), error: null };
  } catch (err) {
    return { value: null, error: `${err?.name}: ${err?.message} (status ${err?.status})` };
  }
}

// JSON of a naturalized instance: binary values as their length, bulk data as its URI.
function plain(value) {
  return JSON.parse(JSON.stringify(value, (key, v) => {
    if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) return { byteLength: v.byteLength };
    return v;
  }));
}

const MODULES = ['imagePlaneModule', 'imagePixelModule', 'generalSeriesModule',
  'generalImageModule', 'generalStudyModule', 'patientModule', 'sopCommonModule',
  'voiLutModule', 'modalityLutModule'];
const { MetadataProvider } = classes;

async function loadStudy(studyUid) {
  const series = await attempt(() => dataSource.query.series.search(studyUid));
  const loaded = await attempt(() => dataSource.retrieve.series.metadata(
    { StudyInstanceUID: studyUid }));
  const study = DicomMetadataStore.getStudy(studyUid);
  const out = { series, metadataError: loaded.error, seriesMetadata: [], instances: [] };
  for (const s of study?.series ?? []) {
    const { instances, ...seriesLevel } = s;
    out.seriesMetadata.push(plain(seriesLevel));
    for (const instance of instances) {
      const imageIds = dataSource.getImageIdsForDisplaySet({ images: [instance] });
      const providerAnswers = {};
      for (const module of MODULES) {
        providerAnswers[module] = plain((await attempt(
          () => MetadataProvider.get(module, imageIds[0]))).value ?? null);
      }
      out.instances.push({
        naturalized: plain(instance),
        imageId: instance.imageId,
        imageIds,
        uidsFromImageId: MetadataProvider.getUIDsFromImageID(imageIds[0]),
        provider: providerAnswers,
        pixelDataBulkDataURI: instance.PixelData?.BulkDataURI ?? null,
      });
    }
  }
  // One bulk data retrieve the way OHIF resolves it (video, PDFs, overlays use this).
  const withBulk = study?.series?.flatMap((s) => s.instances)
    .find((i) => i.PixelData?.retrieveBulkData);
  if (withBulk) {
    const got = await attempt(() => withBulk.PixelData.retrieveBulkData());
    out.bulkRetrieve = {
      SOPInstanceUID: withBulk.SOPInstanceUID,
      BulkDataURI: withBulk.PixelData.BulkDataURI,
      byteLength: got.value?.byteLength ?? null,
      error: got.error,
    };
  }
  return out;
}

const result = {
  versions: {
    '@ohif/extension-default': version('@ohif/extension-default'),
    '@ohif/core': version('@ohif/core'),
    'dicomweb-client': version('dicomweb-client'),
    dcmjs: version('dcmjs'),
  },
  studySearches: [],
  studies: {},
};
for (const filters of config.studyFilters ?? [{}]) {
  result.studySearches.push({
    filters,
    ...(await attempt(() => dataSource.query.studies.search(filters))),
  });
}
for (const uid of config.studies ?? []) result.studies[uid] = await loadStudy(uid);
result.requests = globalThis.xhrLog;
writeJson(JSON.stringify(result));

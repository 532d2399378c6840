// Loads an SR the node wrote through the PUBLISHED viewer code, under plain Node:
//   - OHIF's SR extension (@ohif/extension-cornerstone-dicom-sr, its npm UMD bundle):
//     the "dicom-sr" SOP Class Handler's getDisplaySetsFromSeries and the display set's
//     load(), which is what OHIF runs when a study with an SR is opened;
//   - the Cornerstone3D SR adapters (@cornerstonejs/adapters) that OHIF uses to
//     hydrate SR measurements into tools (MeasurementReport.generateToolState);
//   - dcmjs's own TID 1500 adapters (dcmjs.adapters.Cornerstone.MeasurementReport).
// Prints one JSON object on stdout; the Python tests assert on it.
//
// Usage: node ohif_sr.mjs SR.dcm SOURCE.dcm [SOURCE.dcm ...]
//
// What is NOT the published code (shims), and why:
//   - dom-shim.cjs: window/self/document/navigator/location stand-ins, because
//     @ohif/core's bundle touches them at import time (Mousetrap, platform checks).
//   - The UMD's browser-only externals are stubbed: @ohif/extension-cornerstone (only
//     its Enums source name/version are read on this path; the values are OHIF's),
//     @ohif/i18n (t() returns the key), @ohif/ui-next and SystemProvider (React UI,
//     not reached when parsing). @ohif/core, @cornerstonejs/core, /tools and
//     /adapters, gl-matrix and dcmjs are the real packages.
//   - OHIF's services are small stand-ins holding what the app would hold: the
//     displaySetService knows the source image's display set, the data source maps
//     it to an imageId, measurementService has no hydration mappings and
//     customizationService has no customisation. The instances go through OHIF's real
//     DicomMetadataStore and MetadataProvider, registered with Cornerstone's metaData
//     as OHIF's cornerstone extension does.
import {
  csAdapters, csCore, csTools, dcmjs, extension, naturalize, ohifCore, registerSources, safe,
  version, writeJson,
} from './viewer_env.mjs';

const [srPath, ...sourcePaths] = process.argv.slice(2);
if (!srPath || sourcePaths.length === 0) {
  console.error('usage: node ohif_sr.mjs SR.dcm SOURCE.dcm [SOURCE.dcm ...]');
  process.exit(2);
}

const { utils } = ohifCore;
const sr = naturalize(srPath);
const sources = sourcePaths.map(naturalize);
const imageIds = registerSources(sources, 'wadouri'); // SOPInstanceUID -> imageIds
const sourceDisplaySets = [...new Set(sources.map((ds) => ds.SeriesInstanceUID))].map(
  (series) => {
    const images = sources.filter((ds) => ds.SeriesInstanceUID === series);
    return {
      displaySetInstanceUID: utils.guid(),
      StudyInstanceUID: images[0].StudyInstanceUID,
      SeriesInstanceUID: series,
      FrameOfReferenceUID: images[0].FrameOfReferenceUID,
      Modality: images[0].Modality,
      images,
      instances: images,
      unsupported: false,
    };
  });

const dataSource = {
  retrieve: {
    bulkDataURI: async () => {
      throw new Error('bulk data is not expected: the SR file is read whole');
    },
  },
  getImageIdsForDisplaySet: (displaySet) =>
    displaySet.images.flatMap((ds) => imageIds.get(ds.SOPInstanceUID) ?? []),
};
const servicesManager = {
  services: {
    displaySetService: {
      activeDisplaySets: sourceDisplaySets,
      EVENTS: { DISPLAY_SETS_ADDED: 'event::displaySetService:displaySetsAdded' },
      subscribe: () => ({ unsubscribe() {} }),
      getDisplaySetByUID: (uid) =>
        sourceDisplaySets.find((d) => d.displaySetInstanceUID === uid),
    },
    measurementService: { getSourceMappings: () => [] },
    customizationService: { getCustomization: () => undefined },
  },
};
const extensionManager = { getDataSources: () => [dataSource] };

const out = {
  versions: Object.fromEntries([
    '@ohif/extension-cornerstone-dicom-sr', '@ohif/core', '@cornerstonejs/adapters',
    '@cornerstonejs/core', '@cornerstonejs/tools', 'dcmjs',
  ].map((name) => [name, version(name)]).concat([['node', process.version]])),
  sr: { SOPInstanceUID: sr.SOPInstanceUID, SOPClassUID: sr.SOPClassUID },
  ohif: null,
  cornerstone3dAdapters: null,
  dcmjsAdapters: null,
};

// 1. OHIF: the SOP Class Handler and the display set's load().
{
  const result = { handler: null, displaySets: 0, error: null, measurements: [],
                   annotations: [], isImagingMeasurementReport: null, isRehydratable: null };
  try {
    const handlers = extension.getSopClassHandlerModule({ servicesManager, extensionManager });
    const handler = handlers.find((h) => h.sopClassUids.includes(sr.SOPClassUID)
      && h.name === 'dicom-sr-3d') ?? handlers.find((h) => h.sopClassUids.includes(sr.SOPClassUID));
    result.handler = handler?.name ?? null;
    if (!handler) throw new Error(`no SOP class handler for ${sr.SOPClassUID}`);
    const displaySets = handler.getDisplaySetsFromSeries([sr]);
    result.displaySets = displaySets.length;
    const displaySet = displaySets[0];
    await displaySet.load();
    result.isImagingMeasurementReport = displaySet.isImagingMeasurementReport;
    result.isRehydratable = displaySet.isRehydratable;
    result.referencedImages = displaySet.referencedImages;
    result.measurements = displaySet.measurements.map((m) => ({
      TrackingIdentifier: m.TrackingIdentifier,
      TrackingUniqueIdentifier: m.TrackingUniqueIdentifier,
      labels: m.labels,
      loaded: m.loaded,
      graphicType: m.coords?.[0]?.GraphicType ?? null,
      valueType: m.coords?.[0]?.ValueType ?? null,
      graphicData: m.coords?.[0]?.GraphicData ? Array.from(m.coords[0].GraphicData) : null,
      coordsReferencedSOPInstanceUID:
        m.coords?.[0]?.ReferencedSOPSequence?.ReferencedSOPInstanceUID ?? null,
      ReferencedSOPInstanceUID: m.ReferencedSOPInstanceUID ?? null,
      frameNumber: m.frameNumber ?? null,
      imageId: m.imageId ?? null,
    }));
    // What OHIF's DICOMSRDisplayTool (registered by the extension's preRegistration)
    // writes in each measurement's text box: its own _getTextBoxLinesFromLabels.
    extension.preRegistration({ configuration: {}, servicesManager });
    const DisplayTool = csTools.state.tools?.DICOMSRDisplay?.toolClass;
    const textTool = DisplayTool ? new DisplayTool({}, {}) : null;
    result.annotations = csTools.annotation.state.getAllAnnotations().map((a) => ({
      textLines: textTool ? textTool._getTextBoxLinesFromLabels(a.data?.labels ?? []) : null,
      toolName: a.metadata?.toolName,
      referencedImageId: a.metadata?.referencedImageId,
      graphicType: a.metadata?.graphicType,
      label: a.data?.label ?? null,
      labels: a.data?.labels ?? [],
      points: (a.data?.handles?.points ?? []).map((p) => Array.from(p)),
      TrackingUniqueIdentifier: a.data?.TrackingUniqueIdentifier,
    }));
  } catch (err) {
    result.error = `${err?.name}: ${err?.message}`;
    result.stack = String(err?.stack ?? '').split('\n').slice(0, 6).join('\n');
  }
  out.ohif = result;
}

// 2. The Cornerstone3D adapters OHIF hydrates SR measurements with.
{
  // Keyed "SOPInstanceUID:frame", as OHIF's hydrateStructuredReport builds it.
  const sopToImageId = Object.fromEntries([...imageIds.entries()].flatMap(
    ([uid, ids]) => ids.map((id, i) => [`${uid}:${i + 1}`, id])));
  const { MeasurementReport } = csAdapters.adaptersSR.Cornerstone3D;
  const { value, error } = safe(() => MeasurementReport.generateToolState(
    sr, sopToImageId, csCore.metaData));
  out.cornerstone3dAdapters = {
    error,
    tools: value ? Object.fromEntries(Object.entries(value).map(([tool, list]) => [tool,
      list.map((m) => ({
        label: m.annotation?.data?.label ?? null,
        description: m.description ?? null,
        finding: m.finding?.CodeMeaning ?? null,
        referencedImageId: m.annotation?.metadata?.referencedImageId ?? null,
        ReferencedSOPInstanceUID: m.ReferencedSOPInstanceUID ?? null,
        points: (m.annotation?.data?.handles?.points ?? []).map((p) => Array.from(p)),
      }))])) : null,
  };
}

// 3. dcmjs's own (legacy Cornerstone) TID 1500 adapter.
{
  const { value, error } = safe(
    () => dcmjs.adapters.Cornerstone.MeasurementReport.generateToolState(sr));
  out.dcmjsAdapters = {
    error,
    tools: value ? Object.fromEntries(Object.entries(value).map(([tool, list]) => [tool,
      list.map((m) => ({
        finding: m.finding?.CodeMeaning ?? null,
        sopInstanceUid: m.sopInstanceUid ?? null,
        handles: m.handles ? Object.keys(m.handles) : null,
      }))])) : null,
  };
}

writeJson(JSON.stringify(out, null, 1) + '\n');

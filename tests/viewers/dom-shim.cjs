// The least browser @ohif/core's bundle needs to be imported under Node (it touches
// these at import time: Mousetrap binds keys on `document`, a platform check reads
// `navigator`, webpack's runtime uses `self`). Nothing here renders anything.
if (typeof globalThis.window === 'undefined') globalThis.window = globalThis;
if (typeof globalThis.self === 'undefined') globalThis.self = globalThis;
if (typeof globalThis.navigator === 'undefined') {
  globalThis.navigator = { platform: 'node', userAgent: 'node' };
}
if (typeof globalThis.location === 'undefined') {
  globalThis.location = { origin: 'http://localhost', href: 'http://localhost/', search: '',
                          pathname: '/', hash: '' };
}
if (typeof globalThis.document === 'undefined') {
  // Node's own EventTarget: OHIF's services broadcast events on document.body.
  const element = () => Object.assign(new EventTarget(), {
    style: {}, setAttribute() {}, appendChild() {},
  });
  globalThis.document = Object.assign(new EventTarget(), {
    createElement: element, querySelector: () => null,
    documentElement: element(), head: element(), body: element(),
  });
}
// Cornerstone's annotation state tests `selector instanceof HTMLDivElement`.
if (typeof globalThis.HTMLDivElement === 'undefined') {
  globalThis.HTMLDivElement = class HTMLDivElement extends EventTarget {};
}

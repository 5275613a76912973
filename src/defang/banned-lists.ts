/**
 * Default banned file-name extensions and MIME types: the union of what the references ban today, so
 * a site starting from the defaults blocks at least what its users' mail providers block. Kept as data
 * with its sources because vendors change their lists; a policy replaces or extends it.
 */
const SOURCES = {
  // pymilter mime.extlist / bms.py
  pymilter: 'ade adp asd asx asp bas bat chm cmd com cpl crt dll exe hlp hta inf ins isp js jse lnk mdb mde msc msi msp mst ocx pcd pif reg scr sct shs url vb vbe vbs wsc wsf wsh',
  // MIMEDefang 3.3 suggested minimum filter for Windows clients
  mimedefang: 'ade adp app asd asf asx bas bat chm cmd com cpl crt dll exe fxp hlp hta hto inf ini ins isp js jse lib lnk mdb mde msc msi msp mst ocx pcd pif prg reg scr sct sh shb shs sys url vb vbe vbs vcs vxd wmd wms wmz wsc wsf wsh',
  // Microsoft Defender for Office 365 / EOP common attachments filter (default list)
  m365: 'ace ani apk app appx arj bat cab cmd com deb dex dll docm elf exe hta img iso jar jnlp kext lha lib library lnk lzh macho msc msi msix msp mst pif ppa ppam reg rev scf scr sct sys uif vb vbe vbs vxd wsc wsf wsh xll xz z',
  // Outlook / OWA level-1 blocked attachments
  outlook:
    'ade adp app appref-ms asp aspx asx bas bat cdxml cer chm cmd cnt com cpl crt csh der diagcab exe fxp gadget grp hlp hpj hta htc inf ins isp its jar jnlp js jse ksh lnk mad maf mag mam maq mar mas mat mau mav maw mcf mda mdb mde mdt mdw mdz mht mhtml msc msh msh1 msh2 mshxml msh1xml msh2xml msi msp mst msu ops osd pcd pif pl plg prf prg printerexport ps1 ps1xml ps2 ps2xml psc1 psc2 psd1 psdm1 pssc pst py pyc pyo pyw pyz pyzw reg scf scr sct shb shs theme tmp udl url vb vbe vbp vbs vhd vhdx vsmacros vsw wsb webpnp website ws wsc wsf wsh xbap xll xnk',
  // Gmail / Google Workspace
  gmail: 'ade adp apk appx appxbundle bat cab chm cmd com cpl diagcab diagcfg diagpkg dll dmg ex ex_ exe hta img ins iso isp jar jnlp js jse lib lnk mde mjs msc msi msix msixbundle msp mst nsh pif ps1 scr sct shb sys vb vbe vbs vhd vxd wsc wsf wsh xll',
  // Container, shortcut and macro formats used since Office blocked internet macros (2022 onwards)
  modern:
    'one onepkg iso img vhd vhdx udf lnk url website search-ms searchconnector-ms library-ms settingcontent-ms appinstaller appref-ms msix msixbundle appx appxbundle hta htm html shtml xhtml mht mhtml svg js jse mjs wsf vbs vbe ps1 psm1 psd1 bat cmd chm cpl scr pif jar jnlp xll xlam ppam docm dotm xlsm xltm pptm potm ppsm sldm iqy slk',
} as const;

export type BannedListSource = keyof typeof SOURCES;

/** Extension (lower-case, no dot) -> the lists that ban it. */
export const BANNED_EXTENSION_SOURCES: ReadonlyMap<string, readonly BannedListSource[]> = (() => {
  const map = new Map<string, BannedListSource[]>();
  for (const [source, list] of Object.entries(SOURCES) as [BannedListSource, string][]) {
    for (const ext of list.split(' ')) map.set(ext, [...(map.get(ext) ?? []), source]);
  }
  return map;
})();

export const DEFAULT_BANNED_EXTENSIONS: readonly string[] = [...BANNED_EXTENSION_SOURCES.keys()].sort();

/** Declared types that only executables and scripts use (amavis, OWA). */
export const DEFAULT_BANNED_TYPES: readonly string[] = [
  'application/x-msdownload',
  'application/x-msdos-program',
  'application/x-ms-dos-executable',
  'application/x-dosexec',
  'application/x-executable',
  'application/x-ms-installer',
  'application/x-msi',
  'application/x-ms-shortcut',
  'application/hta',
  'application/x-javascript',
  'application/javascript',
  'text/javascript',
  'application/ecmascript',
  'text/vbscript',
  'text/scriptlet',
  'application/x-sh',
  'application/x-bat',
  'application/x-csh',
  'application/x-powershell',
  'application/prg',
  'application/msaccess',
  'application/vnd.ms-htmlhelp',
  'application/x-ms-application',
  'application/java-archive',
  'application/x-java-jnlp-file',
];

/** Extensions whose content is HTML a browser would run: attached, they are replaced, not cleaned. */
export const HTML_EXTENSIONS: ReadonlySet<string> = new Set(['htm', 'html', 'shtml', 'xhtml', 'xht', 'svg', 'svgz', 'mht', 'mhtml', 'hta']);

/** Single-file compression suffixes: `evil.exe.gz` carries an .exe. */
export const COMPRESSION_EXTENSIONS: ReadonlySet<string> = new Set(['gz', 'bz2', 'xz', 'z', 'lz', 'lzma', 'zst', 'tgz']);

import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildJar, buildPluginJar, linkedLocalRepository, mavenMissing, mvn, writeMavenSettings } from './package-clients/maven-toolchain.ts';
import { ADMIN_PASSWORD, adminFetch, spawnServer } from './support/spawned-server.ts';
import type { SpawnedServer } from './support/spawned-server.ts';

const sha1 = (bytes: Uint8Array | string) => createHash('sha1').update(bytes).digest('hex');

describe('Maven repositories with the real mvn client', () => {
  let dir: string;
  let server: SpawnedServer;
  let missing: string | undefined;
  // A groupId of its own per run, whose first segment is not in ~/.m2.
  const groupTop = 'strataE2e';
  const groupId = `${groupTop}.t${randomBytes(3).toString('hex')}`;
  const groupPath = groupId.replaceAll('.', '/');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strata-maven-'));
    server = await spawnServer({ dataDir: join(dir, 'data') });
    missing = await mavenMissing();
    if (missing !== undefined) console.log(`skipping the mvn part of the Maven e2e test: ${missing}`);
    const create = (key: string, config: Record<string, unknown>) =>
      adminFetch(server, `/artifactory/api/repositories/${key}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(config) });
    expect((await create('maven-local', { rclass: 'local', packageType: 'maven', maxUniqueSnapshots: 1 })).status).toBe(200);
    expect((await create('maven-releases', { rclass: 'local', packageType: 'maven', handleSnapshots: false })).status).toBe(200);
    expect((await create('maven-virtual', { rclass: 'virtual', packageType: 'maven', repositories: ['maven-releases', 'maven-local'] })).status).toBe(200);
  });
  afterAll(async () => {
    await server?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('deploys with maven-deploy-plugin deploy-file and compiles a consumer through a virtual repository', async (context) => {
    if (missing !== undefined) return context.skip();
    const repoUrl = `${server.url}/artifactory/maven-local`;
    const settings = join(dir, 'settings.xml');
    await writeMavenSettings(settings, repoUrl, 'admin', ADMIN_PASSWORD);
    const localRepo = await linkedLocalRepository(join(dir, 'm2'), groupTop);
    const common = ['-s', settings, `-Dmaven.repo.local=${localRepo}`];
    const greeterJar = await buildJar(join(dir, 'greeter'), 'demo.greeter', 'Greeter', '  public static String greet(String who) { return "hello " + who; }');
    const helperJar = await buildJar(join(dir, 'helper'), 'demo.helper', 'Helper', '  public static int twice(int n) { return 2 * n; }');
    const deployFile = (file: string, artifactId: string, version: string) =>
      mvn([...common, 'org.apache.maven.plugins:maven-deploy-plugin:3.1.4:deploy-file', `-Dfile=${file}`, `-DgroupId=${groupId}`, `-DartifactId=${artifactId}`, `-Dversion=${version}`, '-Dpackaging=jar', '-DgeneratePom=true', `-Durl=${repoUrl}`, '-DrepositoryId=strata'], dir);

    await deployFile(greeterJar, 'greeter', '1.0.0');
    await deployFile(greeterJar, 'greeter', '1.1.0');
    await deployFile(helperJar, 'helper', '2.0-SNAPSHOT');
    await deployFile(helperJar, 'helper', '2.0-SNAPSHOT');

    const metadata = await (await adminFetch(server, `/artifactory/maven-local/${groupPath}/greeter/maven-metadata.xml`)).text();
    expect(metadata).toContain('<latest>1.1.0</latest>');
    expect(metadata).toContain('<release>1.1.0</release>');
    expect(metadata).toMatch(/<version>1\.0\.0<\/version>\s*<version>1\.1\.0<\/version>/);
    const metadataSha1 = await (await adminFetch(server, `/artifactory/maven-local/${groupPath}/greeter/maven-metadata.xml.sha1`)).text();
    expect(metadataSha1).toBe(sha1(metadata));

    // Two unique snapshot builds deployed, maxUniqueSnapshots 1: only the second is left.
    const snapshotMetadata = await (await adminFetch(server, `/artifactory/maven-local/${groupPath}/helper/2.0-SNAPSHOT/maven-metadata.xml`)).text();
    expect(snapshotMetadata).toContain('<buildNumber>2</buildNumber>');
    const listing = (await (await adminFetch(server, `/artifactory/api/storage/maven-local/${groupPath}/helper/2.0-SNAPSHOT?list&deep=1`)).json()) as { files: { uri: string }[] };
    const names = listing.files.map((file) => file.uri.slice(1)).sort();
    expect(names).toHaveLength(2);
    expect(names.every((name) => /^helper-2\.0-\d{8}\.\d{6}-2\.(jar|pom)$/.test(name))).toBe(true);

    // Another member of the virtual holds an older release: the virtual's metadata merges both.
    const olderPom = `<project><modelVersion>4.0.0</modelVersion><groupId>${groupId}</groupId><artifactId>greeter</artifactId><version>0.9.0</version></project>`;
    expect((await adminFetch(server, `/artifactory/maven-releases/${groupPath}/greeter/0.9.0/greeter-0.9.0.pom`, { method: 'PUT', body: olderPom })).status).toBe(201);
    const merged = await (await adminFetch(server, `/artifactory/maven-virtual/${groupPath}/greeter/maven-metadata.xml`)).text();
    expect(merged).toMatch(/<version>0\.9\.0<\/version>\s*<version>1\.0\.0<\/version>\s*<version>1\.1\.0<\/version>/);
    expect(await (await adminFetch(server, `/artifactory/maven-virtual/${groupPath}/greeter/maven-metadata.xml.sha1`)).text()).toBe(sha1(merged));
    expect(await (await adminFetch(server, `/artifactory/maven-virtual/${groupPath}/helper/2.0-SNAPSHOT/maven-metadata.xml`)).text()).toBe(snapshotMetadata);

    const virtualSettings = join(dir, 'virtual-settings.xml');
    await writeMavenSettings(virtualSettings, `${server.url}/artifactory/maven-virtual`, 'admin', ADMIN_PASSWORD);
    const consumer = join(dir, 'consumer');
    await mkdir(join(consumer, 'src', 'main', 'java', 'demo'), { recursive: true });
    await writeFile(
      join(consumer, 'pom.xml'),
      `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>${groupId}</groupId><artifactId>consumer</artifactId><version>1.0</version>
  <properties><maven.compiler.release>17</maven.compiler.release><project.build.sourceEncoding>UTF-8</project.build.sourceEncoding></properties>
  <dependencies>
    <dependency><groupId>${groupId}</groupId><artifactId>greeter</artifactId><version>1.0.0</version></dependency>
    <dependency><groupId>${groupId}</groupId><artifactId>helper</artifactId><version>2.0-SNAPSHOT</version></dependency>
  </dependencies>
  <build><plugins>
    <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-resources-plugin</artifactId><version>3.3.1</version></plugin>
    <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-compiler-plugin</artifactId><version>3.13.0</version></plugin>
  </plugins></build>
</project>
`,
    );
    await writeFile(
      join(consumer, 'src', 'main', 'java', 'demo', 'App.java'),
      'package demo;\npublic class App { public static void main(String[] a) { System.out.println(demo.greeter.Greeter.greet("x") + demo.helper.Helper.twice(2)); } }\n',
    );
    await mvn(['-s', virtualSettings, `-Dmaven.repo.local=${localRepo}`, 'compile'], consumer);
    // The dependencies came from the server (through the virtual) into the test's own local repository.
    expect((await stat(join(localRepo, groupPath, 'greeter', '1.0.0', 'greeter-1.0.0.jar'))).isFile()).toBe(true);
    const snapshotJars = (await readdir(join(localRepo, groupPath, 'helper', '2.0-SNAPSHOT'))).filter((name) => name.endsWith('.jar'));
    expect(snapshotJars.some((name) => /^helper-2\.0-\d{8}\.\d{6}-2\.jar$/.test(name))).toBe(true);
  });

  it('computes group-level metadata for a deployed maven-plugin, and mvn runs the plugin by its prefix through a virtual', async (context) => {
    if (missing !== undefined) return context.skip();
    const pluginGroup = `${groupId}.plugins`;
    const pluginGroupPath = pluginGroup.replaceAll('.', '/');
    const artifactId = 'strata-demo-maven-plugin';
    // The descriptor's prefix is not Maven's default for the artifactId ('strata-demo'): it must be read from the jar.
    const jar = await buildPluginJar(join(dir, 'plugin'), { groupId: pluginGroup, artifactId, version: '1.0.0' }, 'stratademo', 'hello', 'hello from the strata plugin');
    const pom = join(dir, 'plugin', 'pom.xml');
    await writeFile(
      pom,
      `<project><modelVersion>4.0.0</modelVersion><groupId>${pluginGroup}</groupId><artifactId>${artifactId}</artifactId><version>1.0.0</version><packaging>maven-plugin</packaging><name>Strata demo plugin</name>` +
        // Maven adds plexus-utils 1.1 to a plugin that names none; ~/.m2 has 3.5.1 (the resources plugin's).
        '<dependencies><dependency><groupId>org.codehaus.plexus</groupId><artifactId>plexus-utils</artifactId><version>3.5.1</version></dependency></dependencies></project>',
    );
    const repoUrl = `${server.url}/artifactory/maven-releases`;
    const settings = join(dir, 'plugin-settings.xml');
    await writeMavenSettings(settings, repoUrl, 'admin', ADMIN_PASSWORD);
    const localRepo = await linkedLocalRepository(join(dir, 'm2-plugin'), groupTop);
    await mvn(['-s', settings, `-Dmaven.repo.local=${localRepo}`, 'org.apache.maven.plugins:maven-deploy-plugin:3.1.4:deploy-file', `-Dfile=${jar}`, `-DpomFile=${pom}`, `-Durl=${repoUrl}`, '-DrepositoryId=strata'], dir);
    // A library in the same group is not a plugin: it is not listed.
    const library = `<project><modelVersion>4.0.0</modelVersion><groupId>${pluginGroup}</groupId><artifactId>not-a-plugin</artifactId><version>1.0</version></project>`;
    expect((await adminFetch(server, `/artifactory/maven-releases/${pluginGroupPath}/not-a-plugin/1.0/not-a-plugin-1.0.pom`, { method: 'PUT', body: library })).status).toBe(201);

    const expected = `<plugins>\n    <plugin>\n      <name>Strata demo plugin</name>\n      <prefix>stratademo</prefix>\n      <artifactId>${artifactId}</artifactId>\n    </plugin>\n  </plugins>`;
    const groupMetadata = await (await adminFetch(server, `/artifactory/maven-releases/${pluginGroupPath}/maven-metadata.xml`)).text();
    expect(groupMetadata).toContain(expected);
    expect(groupMetadata).not.toContain('not-a-plugin');
    expect(await (await adminFetch(server, `/artifactory/maven-releases/${pluginGroupPath}/maven-metadata.xml.sha1`)).text()).toBe(sha1(groupMetadata));
    expect(await (await adminFetch(server, `/artifactory/maven-virtual/${pluginGroupPath}/maven-metadata.xml`)).text()).toContain(expected);
    expect((await adminFetch(server, `/artifactory/maven-local/${pluginGroupPath}/maven-metadata.xml`)).status).toBe(404);

    // mvn resolves the prefix from the group metadata (pluginGroups), then the plugin, through the virtual.
    const virtualSettings = join(dir, 'plugin-virtual-settings.xml');
    await writeMavenSettings(virtualSettings, `${server.url}/artifactory/maven-virtual`, 'admin', ADMIN_PASSWORD, [pluginGroup]);
    const empty = join(dir, 'no-project');
    await mkdir(empty, { recursive: true });
    const { stdout } = await mvn(['-s', virtualSettings, `-Dmaven.repo.local=${localRepo}`, 'stratademo:hello'], empty);
    expect(stdout).toContain('hello from the strata plugin');
  });

  it('serves checksum sidecars for every file and verifies deployed ones instead of storing them', async () => {
    const base = `/artifactory/maven-local/org/example/lib/1.0`;
    const jar = randomBytes(1000);
    expect((await adminFetch(server, `${base}/lib-1.0.jar`, { method: 'PUT', body: jar })).status).toBe(201);
    expect(await (await adminFetch(server, `${base}/lib-1.0.jar.sha1`)).text()).toBe(sha1(jar));
    expect(await (await adminFetch(server, `${base}/lib-1.0.jar.sha256`)).text()).toBe(createHash('sha256').update(jar).digest('hex'));
    expect(await (await adminFetch(server, `${base}/lib-1.0.jar.sha512`)).text()).toBe(createHash('sha512').update(jar).digest('hex'));
    expect(await (await adminFetch(server, `${base}/lib-1.0.jar.md5`)).text()).toBe(createHash('md5').update(jar).digest('hex'));
    expect((await adminFetch(server, `${base}/lib-1.0.jar.sha1`, { method: 'PUT', body: sha1(jar) })).status).toBe(201);
    const wrong = await adminFetch(server, `${base}/lib-1.0.jar.sha1`, { method: 'PUT', body: sha1('other') });
    expect(wrong.status).toBe(409);
    expect(((await wrong.json()) as { errors: { message: string }[] }).errors[0]!.message).toContain('sha1');
    const listing = (await (await adminFetch(server, `/artifactory/api/storage/maven-local/org/example/lib/1.0?list&deep=1`)).json()) as { files: { uri: string }[] };
    expect(listing.files.map((file) => file.uri)).toEqual(['/lib-1.0.jar']);
  });

  it('refuses a POM that does not match its path, a path outside the layout and snapshots where they are not handled', async () => {
    const pom = (groupId: string, artifactId: string, version: string) =>
      `<project><modelVersion>4.0.0</modelVersion><groupId>${groupId}</groupId><artifactId>${artifactId}</artifactId><version>${version}</version></project>`;
    const mismatch = await adminFetch(server, '/artifactory/maven-local/org/example/app/1.0/app-1.0.pom', { method: 'PUT', body: pom('org.example', 'app', '2.0') });
    expect(mismatch.status).toBe(409);
    expect(((await mismatch.json()) as { errors: { message: string }[] }).errors[0]!.message).toContain("version '2.0'");
    expect((await adminFetch(server, '/artifactory/maven-local/org/example/app/1.0/app-1.0.pom')).status).toBe(404);
    const notXml = await adminFetch(server, '/artifactory/maven-local/org/example/app/1.0/app-1.0.pom', { method: 'PUT', body: '<project>' });
    expect(notXml.status).toBe(400);
    const good = await adminFetch(server, '/artifactory/maven-local/org/example/app/1.0/app-1.0.pom', { method: 'PUT', body: pom('org.example', 'app', '1.0') });
    expect(good.status).toBe(201);

    for (const path of ['app-1.0.jar', 'org/example/app/1.0/other-1.0.jar', 'org/example/app/1.0/app-2.0.jar', 'org/example/app/1.0/app-1.0']) {
      const response = await adminFetch(server, `/artifactory/maven-local/${path}`, { method: 'PUT', body: 'x' });
      expect(response.status, path).toBe(400);
    }
    const snapshot = await adminFetch(server, '/artifactory/maven-releases/org/example/app/1.0-SNAPSHOT/app-1.0-20240101.120000-1.jar', { method: 'PUT', body: 'x' });
    expect(snapshot.status).toBe(409);
    expect(((await snapshot.json()) as { errors: { message: string }[] }).errors[0]!.message).toContain('does not handle snapshots');
    expect((await adminFetch(server, '/artifactory/maven-releases/org/example/app/1.0/app-1.0.jar', { method: 'PUT', body: 'x' })).status).toBe(201);
  });
  it('a virtual resolves snapshots and releases only from members that handle them, and merges only those versions', async () => {
    const create = (key: string, config: Record<string, unknown>, method = 'PUT') =>
      adminFetch(server, `/artifactory/api/repositories/${key}`, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(config) });
    const put = async (repo: string, path: string, body: Uint8Array) => expect((await adminFetch(server, `/artifactory/${repo}/${path}`, { method: 'PUT', body })).status, `${repo}/${path}`).toBe(201);
    // Both members first take every kind; then each stops handling one. What they hold stays.
    expect((await create('mvn-rel', { rclass: 'local', packageType: 'maven' })).status).toBe(200);
    expect((await create('mvn-snap', { rclass: 'local', packageType: 'maven' })).status).toBe(200);
    const lib = 'org/handles/lib';
    const [releaseInRel, snapshotInRel, releaseInSnap, snapshotInSnap, onlyInSnap] = [1, 2, 3, 4, 5].map(() => randomBytes(64));
    await put('mvn-rel', `${lib}/1.0/lib-1.0.jar`, releaseInRel!);
    await put('mvn-rel', `${lib}/2.0-SNAPSHOT/lib-2.0-20240101.120000-1.jar`, snapshotInRel!);
    await put('mvn-rel', `${lib}/2.0-SNAPSHOT/lib-2.0-SNAPSHOT.jar`, snapshotInRel!);
    await put('mvn-snap', `${lib}/1.0/lib-1.0.jar`, releaseInSnap!);
    await put('mvn-snap', `${lib}/3.0/lib-3.0.jar`, onlyInSnap!);
    await put('mvn-snap', `${lib}/2.0-SNAPSHOT/lib-2.0-20240102.120000-7.jar`, snapshotInSnap!);
    expect((await create('mvn-rel', { handleSnapshots: false }, 'POST')).status).toBe(200);
    expect((await create('mvn-snap', { handleReleases: false }, 'POST')).status).toBe(200);
    expect((await create('mvn-handles', { rclass: 'virtual', packageType: 'maven', repositories: ['mvn-rel', 'mvn-snap'] })).status).toBe(200);
    expect((await create('mvn-handles-reversed', { rclass: 'virtual', packageType: 'maven', repositories: ['mvn-snap', 'mvn-rel'] })).status).toBe(200);

    // Deploys are refused where the kind is not handled.
    expect((await adminFetch(server, `/artifactory/mvn-rel/${lib}/4.0-SNAPSHOT/lib-4.0-SNAPSHOT.jar`, { method: 'PUT', body: 'x' })).status).toBe(409);
    expect((await adminFetch(server, `/artifactory/mvn-snap/${lib}/4.0/lib-4.0.jar`, { method: 'PUT', body: 'x' })).status).toBe(409);

    const bytes = async (path: string) => {
      const response = await adminFetch(server, path);
      return { status: response.status, body: Buffer.from(await response.arrayBuffer()) };
    };
    for (const virtual of ['mvn-handles', 'mvn-handles-reversed']) {
      // Releases only from mvn-rel, snapshots only from mvn-snap, whatever the order.
      expect((await bytes(`/artifactory/${virtual}/${lib}/1.0/lib-1.0.jar`)).body.equals(releaseInRel!), virtual).toBe(true);
      expect(await (await adminFetch(server, `/artifactory/${virtual}/${lib}/1.0/lib-1.0.jar.sha1`)).text()).toBe(sha1(releaseInRel!));
      expect((await bytes(`/artifactory/${virtual}/${lib}/2.0-SNAPSHOT/lib-2.0-20240102.120000-7.jar`)).body.equals(snapshotInSnap!)).toBe(true);
      expect((await bytes(`/artifactory/${virtual}/${lib}/2.0-SNAPSHOT/lib-2.0-20240101.120000-1.jar`)).status).toBe(404);
      expect((await bytes(`/artifactory/${virtual}/${lib}/2.0-SNAPSHOT/lib-2.0-SNAPSHOT.jar`)).status).toBe(404);
      expect((await adminFetch(server, `/artifactory/${virtual}/${lib}/2.0-SNAPSHOT/lib-2.0-SNAPSHOT.jar.sha1`)).status).toBe(404);
      expect((await bytes(`/artifactory/${virtual}/${lib}/3.0/lib-3.0.jar`)).status).toBe(404);
      const snapshotMetadata = await (await adminFetch(server, `/artifactory/${virtual}/${lib}/2.0-SNAPSHOT/maven-metadata.xml`)).text();
      expect(snapshotMetadata).toContain('<timestamp>20240102.120000</timestamp>');
      expect(snapshotMetadata).toContain('<buildNumber>7</buildNumber>');
      const merged = await (await adminFetch(server, `/artifactory/${virtual}/${lib}/maven-metadata.xml`)).text();
      expect(merged).toMatch(/<versions>\s*<version>1\.0<\/version>\s*<version>2\.0-SNAPSHOT<\/version>\s*<\/versions>/);
      expect(merged).toContain('<release>1.0</release>');
      expect(await (await adminFetch(server, `/artifactory/${virtual}/${lib}/maven-metadata.xml.sha1`)).text()).toBe(sha1(merged));
    }
    // Each local still serves what it holds when asked directly.
    expect((await bytes(`/artifactory/mvn-snap/${lib}/3.0/lib-3.0.jar`)).body.equals(onlyInSnap!)).toBe(true);

    // A remote that does not handle snapshots neither fetches nor serves them; its releases come through.
    expect(
      (await create('mvn-remote-releases', { rclass: 'remote', packageType: 'maven', url: `${server.url}/artifactory/mvn-snap`, username: 'admin', password: ADMIN_PASSWORD, handleSnapshots: false }))
        .status,
    ).toBe(200);
    expect((await bytes(`/artifactory/mvn-remote-releases/${lib}/2.0-SNAPSHOT/lib-2.0-20240102.120000-7.jar`)).status).toBe(404);
    expect((await bytes(`/artifactory/mvn-remote-releases/${lib}/3.0/lib-3.0.jar`)).body.equals(onlyInSnap!)).toBe(true);
    expect((await create('mvn-over-remote', { rclass: 'virtual', packageType: 'maven', repositories: ['mvn-remote-releases'] })).status).toBe(200);
    expect((await bytes(`/artifactory/mvn-over-remote/${lib}/2.0-SNAPSHOT/lib-2.0-20240102.120000-7.jar`)).status).toBe(404);
    const overRemote = await (await adminFetch(server, `/artifactory/mvn-over-remote/${lib}/maven-metadata.xml`)).text();
    expect(overRemote).toContain('<version>3.0</version>');
    expect(overRemote).not.toContain('SNAPSHOT');
  });
});

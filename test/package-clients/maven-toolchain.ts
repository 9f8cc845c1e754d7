import { execFile } from 'node:child_process';
import { mkdir, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The plugins the Maven e2e test runs; they (and their dependencies) come from ~/.m2 only. */
export const MAVEN_PLUGINS = {
  deploy: 'org/apache/maven/plugins/maven-deploy-plugin/3.1.4',
  resources: 'org/apache/maven/plugins/maven-resources-plugin/3.3.1',
  compiler: 'org/apache/maven/plugins/maven-compiler-plugin/3.13.0',
} as const;

export const USER_MAVEN_REPOSITORY = join(homedir(), '.m2', 'repository');

/** Why the Maven e2e test cannot run here, or undefined when mvn, javac, jar and the plugins are present. */
export async function mavenMissing(): Promise<string | undefined> {
  for (const tool of ['mvn', 'javac', 'jar']) {
    try {
      await run(tool, ['--version'], { timeout: 30_000 });
    } catch {
      return `${tool} is not installed`;
    }
  }
  for (const plugin of Object.values(MAVEN_PLUGINS)) {
    try {
      await stat(join(USER_MAVEN_REPOSITORY, plugin));
    } catch {
      return `${plugin} is not in ${USER_MAVEN_REPOSITORY}`;
    }
  }
  return undefined;
}

/**
 * A local repository for one test: every top-level entry of ~/.m2/repository linked in (the
 * plugins resolve from there, nothing is fetched), while what the test resolves from the
 * server lands in real directories of the temporary one and never touches ~/.m2. `ownTop`
 * is the first segment of the test's groupIds: it must not be linked.
 */
export async function linkedLocalRepository(dir: string, ownTop: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const entry of await readdir(USER_MAVEN_REPOSITORY)) {
    if (entry === ownTop) throw new Error(`~/.m2/repository already holds '${ownTop}': pick another groupId`);
    await symlink(join(USER_MAVEN_REPOSITORY, entry), join(dir, entry));
  }
  return dir;
}

/**
 * A settings.xml whose mirror sends every request to `url`, with snapshots enabled, as admin.
 * `pluginGroups`: groupIds searched for a plugin prefix (`mvn prefix:goal`).
 */
export async function writeMavenSettings(file: string, url: string, username: string, password: string, pluginGroups: readonly string[] = []): Promise<void> {
  await writeFile(
    file,
    `<settings>
  <pluginGroups>${pluginGroups.map((group) => `<pluginGroup>${group}</pluginGroup>`).join('')}</pluginGroups>
  <servers><server><id>strata</id><username>${username}</username><password>${password}</password></server></servers>
  <mirrors><mirror><id>strata</id><mirrorOf>*</mirrorOf><url>${url}</url></mirror></mirrors>
  <profiles><profile><id>strata</id>
    <repositories><repository><id>central</id><url>${url}</url><releases><enabled>true</enabled></releases><snapshots><enabled>true</enabled></snapshots></repository></repositories>
    <pluginRepositories><pluginRepository><id>central</id><url>${url}</url></pluginRepository></pluginRepositories>
  </profile></profiles>
  <activeProfiles><activeProfile>strata</activeProfile></activeProfiles>
</settings>
`,
  );
}

export async function mvn(args: readonly string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run('mvn', ['-B', '--no-transfer-progress', ...args], { cwd, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`mvn ${args.join(' ')} failed: ${failed.message}\n${failed.stdout ?? ''}\n${failed.stderr ?? ''}`);
  }
}

/** Compiles `className` (in package `javaPackage`) with one static method into a jar. */
export async function buildJar(dir: string, javaPackage: string, className: string, body: string): Promise<string> {
  const sources = join(dir, 'src', ...javaPackage.split('.'));
  await mkdir(sources, { recursive: true });
  await writeFile(join(sources, `${className}.java`), `package ${javaPackage};\npublic class ${className} {\n${body}\n}\n`);
  const classes = join(dir, 'classes');
  await mkdir(classes, { recursive: true });
  await run('javac', ['-d', classes, join(sources, `${className}.java`)]);
  const jar = join(dir, `${className}.jar`);
  await run('jar', ['cf', jar, '-C', classes, '.']);
  return jar;
}

/** The maven-plugin-api jar of the installed Maven (in its lib folder), to compile a mojo against. */
export async function mavenPluginApiJar(): Promise<string> {
  const { stdout } = await run('mvn', ['--version'], { timeout: 30_000 });
  const home = /Maven home: (.+)/.exec(stdout)?.[1]?.trim();
  if (home === undefined) throw new Error(`mvn --version names no Maven home:\n${stdout}`);
  const jar = (await readdir(join(home, 'lib'))).find((name) => /^maven-plugin-api-.*\.jar$/.test(name));
  if (jar === undefined) throw new Error(`no maven-plugin-api jar in ${join(home, 'lib')}`);
  return join(home, 'lib', jar);
}

/**
 * A Maven plugin jar: one mojo (`goal`, no project needed) that logs `message`, and its
 * hand-written descriptor META-INF/maven/plugin.xml naming `goalPrefix`.
 */
export async function buildPluginJar(dir: string, coordinates: { groupId: string; artifactId: string; version: string }, goalPrefix: string, goal: string, message: string): Promise<string> {
  const sources = join(dir, 'src', 'demo', 'plugin');
  await mkdir(sources, { recursive: true });
  await writeFile(
    join(sources, 'HelloMojo.java'),
    `package demo.plugin;\npublic class HelloMojo extends org.apache.maven.plugin.AbstractMojo {\n  public void execute() { getLog().info(${JSON.stringify(message)}); }\n}\n`,
  );
  const classes = join(dir, 'classes');
  await mkdir(join(classes, 'META-INF', 'maven'), { recursive: true });
  await run('javac', ['-cp', await mavenPluginApiJar(), '-d', classes, join(sources, 'HelloMojo.java')]);
  await writeFile(
    join(classes, 'META-INF', 'maven', 'plugin.xml'),
    `<plugin>
  <name>Strata demo plugin</name>
  <groupId>${coordinates.groupId}</groupId><artifactId>${coordinates.artifactId}</artifactId><version>${coordinates.version}</version>
  <goalPrefix>${goalPrefix}</goalPrefix>
  <isolatedRealm>false</isolatedRealm><inheritedByDefault>true</inheritedByDefault>
  <mojos><mojo>
    <goal>${goal}</goal><requiresProject>false</requiresProject><requiresDirectInvocation>false</requiresDirectInvocation>
    <requiresOnline>false</requiresOnline><inheritedByDefault>true</inheritedByDefault><aggregator>false</aggregator>
    <implementation>demo.plugin.HelloMojo</implementation><language>java</language>
    <instantiationStrategy>per-lookup</instantiationStrategy><executionStrategy>once-per-session</executionStrategy><threadSafe>true</threadSafe>
    <parameters/>
  </mojo></mojos>
  <dependencies/>
</plugin>
`,
  );
  const jar = join(dir, `${coordinates.artifactId}.jar`);
  await run('jar', ['cf', jar, '-C', classes, '.']);
  return jar;
}

// Golden-free pixel checks of the offscreen renderer on Mesa lavapipe (or any Vulkan device):
// known points land at the expected pixels in the expected colours, hidden categories vanish,
// selection dims the rest, and the image has the requested size.
#include <QtTest/QtTest>

#include <random>

#include "io/error.hpp"
#include "render/colormap.hpp"
#include "render/gpu_selection.hpp"
#include "render/layout_stream.hpp"
#include "render/offscreen.hpp"
#include "render/selection.hpp"

using namespace orrery;

namespace {

bool near(std::array<std::uint8_t, 4> px, int r, int g, int b, int tol = 8) {
  return std::abs(px[0] - r) <= tol && std::abs(px[1] - g) <= tol && std::abs(px[2] - b) <= tol;
}

QString show(std::array<std::uint8_t, 4> p) {
  return QString("(%1,%2,%3,%4)").arg(p[0]).arg(p[1]).arg(p[2]).arg(p[3]);
}

}  // namespace

class TestOffscreen : public QObject {
  Q_OBJECT
  std::unique_ptr<render::OffscreenRenderer> renderer_;
  // Three points at the corners of a square plus one at the centre.
  std::vector<float> xy_{0, 0, 10, 0, 0, 10, 5, 5};
  std::vector<std::int32_t> labels_{0, 1, 2, 3};
  std::vector<std::string> palette_{"#ff0000", "#00ff00", "#0000ff", "#000000"};

  render::Camera camera_for(const render::PointSet& p, float w, float h) {
    render::Camera c;
    c.fit(p, w, h, 0.1f);
    return c;
  }

 private slots:
  void initTestCase() {
    try {
      renderer_ = std::make_unique<render::OffscreenRenderer>();
    } catch (const std::exception& e) {
      QSKIP(qPrintable(QString("no Vulkan device: %1").arg(e.what())));
    }
    qInfo("Vulkan device: %s", renderer_->device_name().c_str());
  }

  void cameraMapsCorners() {
    auto p = render::categorical_points(xy_, labels_, palette_);
    auto c = camera_for(p, 200, 100);
    // Data square 10 x 10 fits the 100 px height with 10% margin: 8 px per unit, centred.
    auto lo = c.to_pixels({0, 0});
    auto hi = c.to_pixels({10, 10});
    QCOMPARE(qRound(lo.x), 60);
    QCOMPARE(qRound(lo.y), 90);  // y up in data, down in pixels
    QCOMPARE(qRound(hi.x), 140);
    QCOMPARE(qRound(hi.y), 10);
    auto w = c.to_world({100, 50});
    QVERIFY(std::fabs(w.x - 5) < 1e-4 && std::fabs(w.y - 5) < 1e-4);
    // Zoom at a cursor keeps the point under it fixed.
    c.zoom_at(60, 90, 2.0f);
    auto again = c.to_pixels({0, 0});
    QVERIFY(std::fabs(again.x - 60) < 1e-3 && std::fabs(again.y - 90) < 1e-3);

    // Non-finite positions do not count: the same fit with NaN and Inf points added.
    auto bad = p;
    const float inf = std::numeric_limits<float>::infinity();
    for (glm::vec2 v : {glm::vec2(inf, 0), glm::vec2(0, -inf), glm::vec2(std::nanf(""), 3)}) {
      bad.positions.push_back(v);
      bad.colors.push_back(bad.colors.front());
    }
    auto c_bad = camera_for(bad, 200, 100);
    QCOMPARE(qRound(c_bad.to_pixels({0, 0}).x), 60);
    QCOMPARE(qRound(c_bad.to_pixels({10, 10}).y), 10);
    render::PointSet only_bad;
    only_bad.positions = {{inf, inf}};
    only_bad.colors = {0xffffffffu};
    auto c_none = camera_for(only_bad, 200, 100);
    QVERIFY(std::isfinite(c_none.to_pixels({0, 0}).x));
  }

  void pointsAtExpectedPixels() {
    auto p = render::categorical_points(xy_, labels_, palette_, {}, {}, 255);
    const render::RenderOptions o{200, 100, 9};
    auto img = renderer_->render(p, camera_for(p, 200, 100), o);
    QCOMPARE(img.width, 200u);
    QCOMPARE(img.height, 100u);
    QCOMPARE(img.rgba.size(), std::size_t{200 * 100 * 4});
    QVERIFY2(near(img.pixel(60, 90), 255, 0, 0), qPrintable(show(img.pixel(60, 90))));
    QVERIFY2(near(img.pixel(140, 90), 0, 255, 0), qPrintable(show(img.pixel(140, 90))));
    QVERIFY2(near(img.pixel(60, 10), 0, 0, 255), qPrintable(show(img.pixel(60, 10))));
    QVERIFY2(near(img.pixel(100, 50), 0, 0, 0), qPrintable(show(img.pixel(100, 50))));
    // Background elsewhere, and just outside a point's radius.
    QVERIFY(near(img.pixel(5, 5), 255, 255, 255));
    QVERIFY(near(img.pixel(140, 10), 255, 255, 255));
    QVERIFY(near(img.pixel(60 + 7, 90), 255, 255, 255));
  }

  // A streamed layout (render/layout_stream.hpp) with Vulkan playing CUDA's part: what the
  // writer puts into the source buffer reaches the buffer drawn only through consume(), both
  // for sprites and for splats, and the next write waits for the renderer's `consumed`.
  void layoutStreamCopiesOnTheDevice() {
    auto host = render::categorical_points(xy_, labels_, palette_, {}, {}, 255);
    render::PointSet blank = host;  // wrong on purpose: the streamed positions must win
    for (auto& q : blank.positions) q = {0, 0};
    render::LayoutStream stream(renderer_->context(), host.size(), false);
    QCOMPARE(stream.points(), host.size());
    const render::Camera camera = camera_for(host, 200, 100);
    for (auto mode :
         {render::RenderOptions::Points::Sprites, render::RenderOptions::Points::Splat}) {
      render::RenderOptions o{200, 100, 9};
      o.points = mode;
      const render::Image expected = renderer_->render(host, camera, o);
      stream.write_source(xy_.data(), mode == render::RenderOptions::Points::Splat);
      stream.consume();
      QCOMPARE(stream.read_positions(), xy_);
      o.position_buffer = stream.positions();
      QVERIFY(renderer_->render(blank, camera, o).rgba == expected.rgba);
      // A second layout: the first stays drawn until it is consumed.
      std::vector<float> moved = xy_;
      for (std::size_t i = 0; i < moved.size(); i += 2) moved[i] = 10 - moved[i];
      stream.write_source(moved.data(), true);
      QVERIFY(renderer_->render(blank, camera, o).rgba == expected.rgba);
      stream.consume();
      QCOMPARE(stream.read_positions(), moved);
      const render::Image mirrored = renderer_->render(blank, camera, o);
      QVERIFY(mirrored.rgba != expected.rgba);
      QVERIFY2(near(mirrored.pixel(140, 90), 255, 0, 0), qPrintable(show(mirrored.pixel(140, 90))));
      QVERIFY2(near(mirrored.pixel(60, 90), 0, 255, 0), qPrintable(show(mirrored.pixel(60, 90))));
    }
    QVERIFY_THROWS_EXCEPTION(orrery::Error, render::LayoutStream(renderer_->context(), 0, false));
  }

  // Repeated frames (the benchmark's mode): one timing per frame, the same image as one frame.
  void repeatedFramesAreTimedAndIdentical() {
    auto p = render::categorical_points(xy_, labels_, palette_, {}, {}, 255);
    render::RenderOptions o{200, 100, 9};
    const auto once = renderer_->render(p, camera_for(p, 200, 100), o);
    o.frames = 4;
    const auto four = renderer_->render(p, camera_for(p, 200, 100), o);
    QCOMPARE(once.frame_ms.size(), std::size_t{1});
    QCOMPARE(four.frame_ms.size(), std::size_t{4});
    for (double ms : four.frame_ms) QVERIFY(ms > 0);
    QVERIFY(four.upload_ms >= 0);
    QCOMPARE(four.rgba, once.rgba);
    o.frames = 0;
    QVERIFY_THROWS_EXCEPTION(orrery::Error, renderer_->render(p, camera_for(p, 200, 100), o));
  }

  // Compute splatting (the path for millions of points) draws what the sprites draw where points
  // do not overlap (same coverage, colour quantised to 1/4096), shows the alpha-weighted mean
  // where they do instead of the last drawn, and clears its sums every frame.
  void splattingMatchesSprites() {
    render::PointSet grid;
    std::mt19937 rng(5);
    for (int y = 0; y < 12; ++y)
      for (int x = 0; x < 20; ++x) {
        grid.positions.push_back({x * 12.0f, y * 12.0f});
        grid.colors.push_back(render::pack_rgba(rng() % 256, rng() % 256, rng() % 256,
                                                static_cast<std::uint8_t>(80 + rng() % 176)));
      }
    render::Camera camera;
    camera.fit(grid, 260, 160, 0.05f);
    render::RenderOptions o{260, 160, 9};
    o.points = render::RenderOptions::Points::Sprites;
    const auto sprites = renderer_->render(grid, camera, o);
    o.points = render::RenderOptions::Points::Splat;
    o.frames = 3;
    const auto splats = renderer_->render(grid, camera, o);
    int worst = 0;
    for (std::size_t i = 0; i < sprites.rgba.size(); ++i)
      worst = std::max(worst, std::abs(int(sprites.rgba[i]) - int(splats.rgba[i])));
    QVERIFY2(worst <= 2, qPrintable(QString("largest channel difference %1").arg(worst)));
    QVERIFY(!near(splats.pixel(130, 80), 255, 255, 255, 0) ||
            !near(splats.pixel(10, 10), 255, 255, 255, 0));

    render::PointSet pair;  // opaque red, then opaque blue on the same spot
    pair.positions = {{0, 0}, {0, 0}, {10, 10}};
    pair.colors = {render::pack_rgba(255, 0, 0), render::pack_rgba(0, 0, 255),
                   render::pack_rgba(0, 255, 0)};
    render::Camera c2;
    c2.fit(pair, 100, 100, 0.2f);
    render::RenderOptions o2{100, 100, 9};
    const glm::vec2 at = c2.to_pixels({0, 0});
    o2.points = render::RenderOptions::Points::Sprites;
    const auto last = renderer_->render(pair, c2, o2).pixel(int(at.x), int(at.y));
    QVERIFY2(near(last, 0, 0, 255, 2), qPrintable(show(last)));
    o2.points = render::RenderOptions::Points::Splat;
    const auto mean = renderer_->render(pair, c2, o2).pixel(int(at.x), int(at.y));
    QVERIFY2(near(mean, 128, 0, 128, 2), qPrintable(show(mean)));
  }

  // NaN / Inf positions (a damaged stored embedding) and points far off screen draw nothing,
  // with sprites and with splatting: the image equals that of the finite points alone.
  void nonFinitePointsDrawNothing() {
    auto p = render::categorical_points(xy_, labels_, palette_, {}, {}, 255);
    const auto camera = camera_for(p, 200, 100);
    auto bad = p;
    const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
    for (glm::vec2 v : {glm::vec2(nan, 5), glm::vec2(5, nan), glm::vec2(inf, 5),
                        glm::vec2(-inf, -inf), glm::vec2(3e38f, 5), glm::vec2(5, -3e38f)}) {
      bad.positions.push_back(v);
      bad.colors.push_back(render::pack_rgba(0, 0, 0));
    }
    for (auto mode :
         {render::RenderOptions::Points::Sprites, render::RenderOptions::Points::Splat}) {
      render::RenderOptions o{200, 100, 9};
      o.points = mode;
      const auto want = renderer_->render(p, camera, o), got = renderer_->render(bad, camera, o);
      QVERIFY(want.rgba == got.rgba);
    }
  }

  void hiddenCategoryVanishes() {
    std::vector<bool> hidden{false, true, false, false};
    auto p = render::categorical_points(xy_, labels_, palette_, hidden, {}, 255);
    render::RenderOptions o{200, 100, 9};
    auto img = renderer_->render(p, camera_for(p, 200, 100), o);
    QVERIFY(near(img.pixel(140, 90), 255, 255, 255));
    QVERIFY(near(img.pixel(60, 90), 255, 0, 0));
  }

  void selectionDimsTheRest() {
    std::vector<bool> selected{true, false, false, false};
    auto p = render::categorical_points(xy_, labels_, palette_, {}, selected, 255, 40);
    render::RenderOptions o{200, 100, 9};
    auto img = renderer_->render(p, camera_for(p, 200, 100), o);
    QVERIFY(near(img.pixel(60, 90), 255, 0, 0));
    // Unselected points turn grey (190) at alpha 40/255 over white: (245, 245, 245), not green.
    QVERIFY2(near(img.pixel(140, 90), 245, 245, 245, 3), qPrintable(show(img.pixel(140, 90))));
  }

  void largeExport() {
    auto p = render::categorical_points(xy_, labels_, palette_);
    render::RenderOptions o{2400, 1800, 30};
    auto img = renderer_->render(p, camera_for(p, 2400, 1800), o);
    QCOMPARE(img.width, 2400u);
    QCOMPARE(img.height, 1800u);
    auto c = camera_for(p, 2400, 1800).to_pixels({5, 5});
    QVERIFY(near(img.pixel(static_cast<unsigned>(c.x), static_cast<unsigned>(c.y)), 0, 0, 0, 40));
  }

  void lassoAndRectangleSelection() {
    std::vector<glm::vec2> pts{{0, 0}, {10, 0}, {0, 10}, {5, 5}, {2, 1}};
    // A triangle covering the lower-left half (x + y < 9).
    auto in = render::points_in_polygon(pts, {{-1, -1}, {9.5f, -1}, {-1, 9.5f}});
    QCOMPARE(in, (std::vector<bool>{true, false, false, false, true}));
    // A concave "C": the centre point sits in the notch and is outside.
    auto c = render::points_in_polygon(
        pts, {{-1, -1}, {11, -1}, {11, 2}, {3, 2}, {3, 8}, {11, 8}, {11, 11}, {-1, 11}});
    QCOMPARE(c, (std::vector<bool>{true, true, true, false, true}));
    QCOMPARE(render::points_in_polygon(pts, {{0, 0}, {1, 1}}), std::vector<bool>(5, false));
    QCOMPARE(render::points_in_rect(pts, {6, 6}, {4, 4}),
             (std::vector<bool>{false, false, false, true, false}));
  }

  // The slab-indexed lasso equals the plain even-odd test over every edge, for a hand-drawn-like
  // star of 600 vertices, a self-crossing scribble and a flat (zero-height) polygon.
  void lassoEqualsBruteForce() {
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(-12, 12);
    std::vector<glm::vec2> pts(200000);
    for (auto& p : pts) p = {u(rng), u(rng)};
    pts.push_back({0, 3});  // exactly on a vertex row of the flat polygon
    auto brute = [&](const std::vector<glm::vec2>& poly) {
      std::vector<bool> out(pts.size());
      for (std::size_t i = 0; i < pts.size(); ++i) {
        bool in = false;
        for (std::size_t a = 0, b = poly.size() - 1; a < poly.size(); b = a++) {
          const glm::vec2 p = pts[i], v = poly[a], w = poly[b];
          if ((v.y > p.y) != (w.y > p.y) && p.x < (w.x - v.x) * (p.y - v.y) / (w.y - v.y) + v.x)
            in = !in;
        }
        out[i] = in;
      }
      return out;
    };
    std::vector<glm::vec2> star, scribble;
    for (int k = 0; k < 600; ++k) {
      const float t = 6.2831853f * k / 600, r = 6 + 3 * std::sin(7 * t) + u(rng) / 24;
      star.push_back({r * std::cos(t), r * std::sin(t)});
    }
    for (int k = 0; k < 300; ++k) scribble.push_back({u(rng), u(rng)});
    std::vector<glm::vec2> flat{{-5, 3}, {5, 3}, {2, 3}};
    // The GPU path (compute shader, points uploaded once) on the same polygons: its division may
    // round differently, so a point within an ulp of an edge may flip; allow 2 in 200k.
    render::GpuSelection gpu(renderer_->context());
    gpu.set_points(pts);
    for (const auto* poly : {&star, &scribble, &flat}) {
      const auto got = render::points_in_polygon(pts, *poly);
      const auto expected = brute(*poly);
      QCOMPARE(got, expected);
      if (poly != &flat) QVERIFY(std::count(got.begin(), got.end(), true) > 10000);
      const auto on_gpu = gpu.in_polygon(*poly);
      QCOMPARE(on_gpu.size(), expected.size());
      std::size_t differ = 0;
      for (std::size_t i = 0; i < expected.size(); ++i) differ += on_gpu[i] != expected[i];
      QVERIFY2(differ <= 2, qPrintable(QString("%1 points differ on the GPU").arg(differ)));
    }
    QCOMPARE(gpu.in_rect({3, -2}, {-1, 4}), render::points_in_rect(pts, {3, -2}, {-1, 4}));
  }

  // Picking: the nearest pickable point within the radius; hidden ones are skipped.
  void pickingFindsTheNearestVisiblePoint() {
    std::vector<glm::vec2> pts{{0, 0}, {10, 0}, {0, 10}, {5, 5}, {5.2f, 5}};
    QCOMPARE(render::nearest_point(pts, {5.05f, 5.1f}, 1.0f), std::int64_t{3});
    QCOMPARE(render::nearest_point(pts, {5.2f, 5.0f}, 1.0f), std::int64_t{4});
    QCOMPARE(render::nearest_point(pts, {7.5f, 7.5f}, 1.0f), std::int64_t{-1});
    const auto not_three = [](std::size_t i) { return i != 3; };  // point 3 hidden
    QCOMPARE(render::nearest_point(pts, {5.05f, 5.1f}, 1.0f, not_three), std::int64_t{4});
    QCOMPARE(render::nearest_point(pts, {9, 1}, 2.0f), std::int64_t{1});
    // A million points: the answer is the brute-force one.
    std::vector<glm::vec2> many(1'000'000);
    for (std::size_t i = 0; i < many.size(); ++i)
      many[i] = {static_cast<float>((i * 7919) % 1000), static_cast<float>((i * 104729) % 997)};
    const glm::vec2 at{500.3f, 400.6f};
    std::int64_t want = -1;
    float best = 4.0f;
    for (std::size_t i = 0; i < many.size(); ++i) {
      const glm::vec2 d = many[i] - at;
      const float d2 = d.x * d.x + d.y * d.y;
      if (d2 <= best && (want < 0 || d2 < best)) best = d2, want = static_cast<std::int64_t>(i);
    }
    QCOMPARE(render::nearest_point(many, at, 2.0f), want);
  }

  void viridisAndExpressionColouring() {
    QCOMPARE(render::viridis(0.0f), render::pack_rgba(0x44, 0x01, 0x54));
    QCOMPARE(render::viridis(1.0f), render::pack_rgba(0xfd, 0xe7, 0x25));
    QCOMPARE(render::viridis(2.0f), render::viridis(1.0f));  // clamped
    QCOMPARE(render::quantile({5, 1, NAN, 3, 2, 4}, 0.5), 3.0f);
    // Highest values drawn last, coloured by the window [1, 3].
    auto p = render::continuous_points({0, 0, 1, 1, 2, 2}, {3, 1, 2}, 1, 3);
    QCOMPARE(p.positions[2], glm::vec2(0, 0));
    QCOMPARE(p.colors[2], render::viridis(1.0f));
    QCOMPARE(p.colors[0], render::viridis(0.0f));
    QCOMPARE(p.positions[1], glm::vec2(2, 2));
    auto img = renderer_->render(p,
                                 [&] {
                                   render::Camera c;
                                   c.fit(p, 100, 100, 0.2f);
                                   return c;
                                 }(),
                                 {100, 100, 9});
    render::Camera c;
    c.fit(p, 100, 100, 0.2f);
    const auto px = c.to_pixels({0, 0});
    QVERIFY(near(img.pixel(static_cast<unsigned>(px.x), static_cast<unsigned>(px.y)), 0xfd, 0xe7,
                 0x25));
  }

  void absurdSizeIsAnError() {
    auto p = render::categorical_points(xy_, labels_, palette_);
    render::RenderOptions o{0, 100, 4};
    QVERIFY_THROWS_EXCEPTION(orrery::Error, renderer_->render(p, render::Camera{}, o));
  }
};

QTEST_GUILESS_MAIN(TestOffscreen)
#include "test_offscreen.moc"
